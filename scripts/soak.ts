/**
 * `npm run soak`: the fault suites (test/faults) for longer and under more load than CI, round
 * after round with fresh seeds, until the time is up. Figures go to a JSON file.
 *
 *   npm run soak -- [--duration 1h] [--scale 5] [--definitions 10000] [--out soak-results.json]
 *
 * Each round runs `vitest run test/faults` with WEFT_CHAOS_SCALE (run counts and fault windows
 * multiplied), WEFT_FUZZ_DEFINITIONS and WEFT_FUZZ_RUNS, and collects the `[chaos-figures]` /
 * `[fuzz-figures]` lines every scenario prints (runs checked, lost, duplicated, faults injected,
 * seed). A failing round is recorded with its output's tail and the soak goes on; the exit status
 * is 1 if any round failed. Replay a failed scenario with the seed it printed (WEFT_CHAOS_SEED or
 * WEFT_FUZZ_SEED) and the same WEFT_CHAOS_SCALE.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

function durationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`--duration must look like 90s, 30m or 1h; found "${text}"`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

const duration = durationMs(arg('duration', process.env.SOAK_DURATION ?? '1h'));
const scale = arg('scale', process.env.WEFT_CHAOS_SCALE ?? '5');
const definitions = arg('definitions', '10000');
const fuzzRuns = arg('fuzz-runs', '100');
const out = arg('out', 'soak-results.json');

interface Figures {
  scenario?: string;
  suite?: string;
  runs?: number;
  lost?: number;
  duplicated?: number;
  [key: string]: unknown;
}

interface Round {
  round: number;
  startedAt: string;
  seconds: number;
  ok: boolean;
  figures: Figures[];
  /** every "seed N (replay: …)" line: a failing scenario's seed is there even if it printed no figures */
  seeds: string[];
  tail?: string;
}

function runRound(round: number): Promise<Round> {
  const startedAt = new Date();
  return new Promise((resolve) => {
    const child = spawn('npx', ['vitest', 'run', 'test/faults'], {
      cwd: repoRoot,
      env: {
        ...process.env,
        WEFT_FAULTS: '1',
        WEFT_CHAOS_SCALE: scale,
        WEFT_FUZZ_DEFINITIONS: definitions,
        WEFT_FUZZ_RUNS: fuzzRuns,
        FORCE_COLOR: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const take = (d: Buffer) => {
      output += d.toString();
      if (output.length > 4_000_000) output = output.slice(-2_000_000);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => {
      const figures = [...output.matchAll(/\[(?:chaos|fuzz)-figures\] (\{.*\})/g)].map(
        (m) => JSON.parse(m[1]!) as Figures,
      );
      const result: Round = {
        round,
        startedAt: startedAt.toISOString(),
        seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
        ok: code === 0,
        figures,
        seeds: [...output.matchAll(/\[(?:chaos|fuzz)[^\]]*\] seed \d+ \(replay: [^)]*\)/g)].map(
          (m) => m[0],
        ),
      };
      if (code !== 0) result.tail = output.slice(-6_000);
      resolve(result);
    });
  });
}

function summarize(rounds: Round[]) {
  const byScenario: Record<
    string,
    { rounds: number; runs: number; lost: number; duplicated: number; seeds: unknown[] }
  > = {};
  for (const r of rounds)
    for (const f of r.figures) {
      const name = f.scenario ?? f.suite ?? 'unknown';
      const s = (byScenario[name] ??= { rounds: 0, runs: 0, lost: 0, duplicated: 0, seeds: [] });
      s.rounds++;
      s.runs += Number(f.runs ?? f.definitions ?? 0);
      s.lost += Number(f.lost ?? 0);
      s.duplicated += Number(f.duplicated ?? 0);
      s.seeds.push(f.seed);
    }
  return byScenario;
}

const deadline = Date.now() + duration;
const rounds: Round[] = [];
const write = () =>
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        startedAt: rounds[0]?.startedAt,
        finishedAt: new Date().toISOString(),
        settings: {
          duration,
          scale: Number(scale),
          definitions: Number(definitions),
          fuzzRuns: Number(fuzzRuns),
        },
        roundsRun: rounds.length,
        roundsFailed: rounds.filter((r) => !r.ok).length,
        totals: summarize(rounds),
        rounds,
      },
      null,
      2,
    )}\n`,
  );

for (let round = 1; round === 1 || Date.now() < deadline; round++) {
  console.log(`soak round ${round} (scale ${scale}, ${definitions} definitions)…`);
  const result = await runRound(round);
  rounds.push(result);
  console.log(
    `round ${round}: ${result.ok ? 'ok' : 'FAILED'} in ${result.seconds}s — ${result.figures
      .map(
        (f) =>
          `${f.scenario ?? f.suite}: runs ${f.runs ?? f.definitions}, lost ${f.lost ?? 0}, duplicated ${f.duplicated ?? 0}`,
      )
      .join('; ')}`,
  );
  write();
}
console.log(`soak figures written to ${out}`);
process.exit(rounds.every((r) => r.ok) ? 0 : 1);
