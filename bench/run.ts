/**
 * Weft's benchmarks with its peers side by side, in one run on one machine and one PostgreSQL.
 *
 *   npm --prefix bench install                 # once: the peers are the bench's own dependencies
 *   npm run bench                              # everything (about 10–12 minutes on a quiet machine)
 *   npm run bench -- --quick                   # smoke run: 1 rep, small sizes
 *   npm run bench -- --only chain --systems weft-pg,restate
 *   npm run bench -- --diagnose --systems weft-pg,baseline-pg   # rows and WAL per step
 *
 * Benches: chain (one run of N sequential no-op steps, ms/step), fanout (1,000 runs × 3 steps at
 * once, steps/s), latency (1,000 one-step runs one at a time, trigger → step started, p50/p99).
 * Systems: Weft on PostgreSQL and PGlite, graphile-worker, DBOS, Restate (its own log), BullMQ on
 * Redis (not durable per step), and a bare commit.
 *
 * stdout carries JSON lines only (a `meta` line, one `result` line per system × variant × bench,
 * then `ratio` and `goal` lines, `diagnostics`, `end`); progress and a readable summary go to
 * stderr.
 *
 * Method: every system runs in a process of its own (bench/host.ts), all started up front and
 * kept alive; each system gets an untimed warm-up (the chain: CHAIN_WARMUP_RUNS chains), then the repetitions are interleaved across
 * systems (round robin, the systems' order turned by one each repetition), so drift in a shared,
 * noisy machine spreads over everyone instead of landing on whoever ran last. Medians of the
 * repetitions are reported with min, max, every sample and the load average at the start and end
 * of each; ratios are computed from medians of this same run.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { serverFacts } from './lib/postgres.js';
import type { FromHost, HostArgs, Sample, ToHost } from './lib/protocol.js';
import { checkPeersInstalled, peerVersions } from './lib/peers.js';
import {
  goalsOf,
  markHeadlines,
  ratiosOf,
  resultOf,
  unavailableLine,
  unitOf,
  value,
  type Job as ResultJob,
  type ResultLine,
} from './lib/results.js';
import { sig } from './lib/stats.js';
import { describeDiagnostics, fmt, repNote, summary } from './lib/summary.js';
import { TARGETS } from './systems/index.js';
import type { BenchName, Diagnose, Sizes, SystemTarget } from './systems/system.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** Longest one measurement may take (the slowest, DBOS queue latency, takes about a minute). */
const MEASURE_TIMEOUT_MS = 10 * 60_000;
const BENCHES: BenchName[] = ['chain', 'fanout', 'latency'];
/**
 * Untimed chains per system before the timed chain repetitions. One 100-step chain (the old
 * warm-up) left every JIT-compiled client still warming: Weft's per-step time kept falling for
 * about 2,000 steps in one process (0.85 → 0.60 ms/step on this machine), so the timed
 * repetitions measured warm-up, not the engine. Twenty chains is 2,000 steps of the default size,
 * the same for every system.
 */
const CHAIN_WARMUP_RUNS = 20;
/**
 * Timed chain repetitions per system (5 until 2026-11-30). One repetition of a 100-step chain is
 * 0.06-0.2 s, and on this 2-core VM one system's repetitions spread by up to 2x, with no cause
 * the bench could remove (RESULTS.md, "Issue 8, session 14"). Resampling 15 interleaved
 * repetitions of Weft and Restate, the ratio of the medians of 5 fell between 0.58 and 0.74 (5th
 * to 95th percentile), of 11 between 0.62 and 0.70. Eleven cost about 15 s more than five.
 */
const CHAIN_REPS = 11;
/*
 * No forced GC between measurements (it was `gc()` before every one until 2026-11-30, on by
 * `--gc-between-reps`). A full GC forced every 100 steps kept the clients off their steady state,
 * which no deployment has: Weft's own session code, 60 chains of 100 steps in one process, ran at
 * 0.66–0.79 ms/step and 0.19–0.26 ms of client CPU from its 30th chain on without it, and at
 * 0.76–0.95 ms/step and 0.34–0.44 ms of CPU with it, never coming down. Every system's figures
 * under both are in RESULTS.md ("Issue 8, session 13").
 */
/**
 * Untimed passes of a tenth of the fan-out (100 runs of the default 1,000) per system before the
 * fan-out's repetitions: ten of them, one full-size fan-out in all (was one pass). Weft's fan-out
 * rose from about 2,900 to 3,300–3,500 steps/s over its first 10,000 steps in one process.
 */
const FANOUT_WARMUP_PASSES = 10;

const HELP = `Usage: npm run bench -- [options]

  --only <benches>        chain,fanout,latency (default: all three)
  --systems <ids>         comma list of: ${TARGETS.map((t) => t.id).join(', ')}
                          (a name without -pg/-pglite selects both, e.g. weft,graphile)
  --reps <n>              repetitions for every bench (default: chain ${CHAIN_REPS}, fanout 3, latency 3)
  --chain-reps <n>        repetitions of the chain
  --fanout-reps <n>       repetitions of the fan-out
  --latency-reps <n>      repetitions of the latency bench
  --concurrency <list>    worker concurrencies swept in the fan-out, for every system that has
                          such a setting (default 10,25,50,100,200)
  --chain-steps <n>       steps of the chain (default 100)
  --chain-warmup <n>      untimed chains per system before the timed ones (default ${CHAIN_WARMUP_RUNS};
                          1 before 2026-11-30: see RESULTS.md, "Issue 8, session 7")
  --fanout-warmup <n>     untimed passes of a tenth of the fan-out per system (default ${FANOUT_WARMUP_PASSES}; 1 before)
  --gc-between-reps       force a full GC (gc()) in each system's process before every measurement
                          (the default until 2026-11-30: see RESULTS.md, "Issue 8, session 13")
  --fanout-runs <n>       runs of the fan-out (default 1000)
  --fanout-steps <n>      chained steps per fan-out run (default 3)
  --latency-triggers <n>  one-step runs triggered one at a time in the latency bench (default 1000)
  --quick                 smoke run: 1 rep, chain 100, fan-out 100 runs, 100 triggers, concurrency 25
  --out <file>            also write the JSON lines to <file>
  --cpu-prof              write V8 CPU profiles to bench/.profiles/<system>/
  --diagnose              per repetition on PostgreSQL: rows written per step by table
                          (pg_stat_user_tables deltas), WAL bytes per step (pg_current_wal_lsn
                          delta, and this database's share from pg_walinspect), a bare commit
                          beside the chain; for Weft also server time per SQL function. Waits
                          11 s around each repetition for statistics to flush: not for headline
                          figures
  --explain               --diagnose plus every statement's duration via auto_explain (much
                          slower: read the shares, not the times)
  -h, --help`;

interface Options {
  benches: BenchName[];
  targets: SystemTarget[];
  reps: Record<BenchName, number>;
  concurrency: number[];
  sizes: Sizes;
  out: string | undefined;
  cpuProf: boolean;
  diagnose: Diagnose;
  /** Untimed chains each system runs before the chain's repetitions. */
  chainWarmup: number;
  /** Untimed passes of a tenth of the fan-out each system runs before its repetitions. */
  fanoutWarmup: number;
  /** Force a full GC in each system's process before every measurement (`--gc-between-reps`). */
  gcBetweenReps: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      systems: { type: 'string' },
      reps: { type: 'string' },
      'chain-reps': { type: 'string' },
      'fanout-reps': { type: 'string' },
      'latency-reps': { type: 'string' },
      'latency-triggers': { type: 'string' },
      concurrency: { type: 'string' },
      'chain-steps': { type: 'string' },
      'chain-warmup': { type: 'string' },
      'fanout-warmup': { type: 'string' },
      'fanout-runs': { type: 'string' },
      'fanout-steps': { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'gc-between-reps': { type: 'boolean', default: false },
      diagnose: { type: 'boolean', default: false },
      explain: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stderr.write(`${HELP}\n`);
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, fallback: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`--${name} must be a positive integer; found "${raw}"`);
    return n;
  };
  const list = (raw: string | undefined): string[] | undefined =>
    raw
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);

  const quick = values.quick;
  const benches = (list(values.only) ?? BENCHES).map((b) => {
    if (!BENCHES.includes(b as BenchName))
      throw new Error(`--only: unknown bench "${b}"; use ${BENCHES.join(', ')}`);
    return b as BenchName;
  });
  const wanted = list(values.systems);
  const targets = wanted
    ? TARGETS.filter((t) =>
        wanted.some(
          (w) =>
            t.id === w || t.id.startsWith(`${w}-`) || (w === 'graphile-worker' && t.system === w),
        ),
      )
    : TARGETS;
  for (const w of wanted ?? []) {
    if (!TARGETS.some((t) => t.id === w || t.id.startsWith(`${w}-`) || t.system === w)) {
      throw new Error(
        `--systems: unknown system "${w}"; use ${TARGETS.map((t) => t.id).join(', ')}`,
      );
    }
  }
  const reps = int('reps', values.reps, 0);
  const concurrency = (
    list(values.concurrency) ??
    // Up to 200: the fan-out has 1,000 runs, so every system that takes a concurrency setting
    // (graphile-worker, BullMQ, DBOS's queue, Weft) is asked at what it does best; Restate takes
    // none (it runs every invocation it is given). Until session 10 the sweep stopped at 50,
    // below the best of Weft (whose group commit grows with the steps in flight: 0.25 write
    // transactions per step at c50, 0.06 at c200).
    (quick ? ['25'] : ['10', '25', '50', '100', '200'])
  ).map((c) => int('concurrency', c, 1));
  return {
    benches,
    targets,
    reps: {
      chain: int('chain-reps', values['chain-reps'], reps || (quick ? 1 : CHAIN_REPS)),
      fanout: int('fanout-reps', values['fanout-reps'], reps || (quick ? 1 : 3)),
      latency: int('latency-reps', values['latency-reps'], reps || (quick ? 1 : 3)),
    },
    concurrency,
    sizes: {
      chainSteps: int('chain-steps', values['chain-steps'], 100),
      fanoutRuns: int('fanout-runs', values['fanout-runs'], quick ? 100 : 1000),
      fanoutSteps: int('fanout-steps', values['fanout-steps'], 3),
      latencyTriggers: int('latency-triggers', values['latency-triggers'], quick ? 100 : 1000),
    },
    out: values.out,
    cpuProf: values['cpu-prof'],
    diagnose: values.explain ? 'statements' : values.diagnose ? 'functions' : 'off',
    chainWarmup: int('chain-warmup', values['chain-warmup'], quick ? 1 : CHAIN_WARMUP_RUNS),
    fanoutWarmup: int('fanout-warmup', values['fanout-warmup'], quick ? 1 : FANOUT_WARMUP_PASSES),
    gcBetweenReps: values['gc-between-reps'],
  };
}

// ---------------------------------------------------------------------------------------------
// Benchmark processes

class Host {
  private pending: { resolve: (m: FromHost) => void } | undefined;
  private exited: string | undefined;

  private constructor(
    readonly target: SystemTarget,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (m: FromHost) => {
      const p = this.pending;
      this.pending = undefined;
      p?.resolve(m);
    });
    child.on('exit', (code, signal) => {
      this.exited = `exited (code ${code}, signal ${signal})`;
      const p = this.pending;
      this.pending = undefined;
      p?.resolve({ type: 'error', message: `benchmark process of ${target.id} ${this.exited}` });
    });
  }

  static async start(
    target: SystemTarget,
    sizes: Sizes,
    cpuProf: boolean,
    diagnose: Diagnose,
    gcBetweenReps: boolean,
  ): Promise<{ host: Host; ready: FromHost }> {
    const execArgv = ['--import', 'tsx', ...(gcBetweenReps ? ['--expose-gc'] : [])];
    if (cpuProf) {
      // One directory per system: V8 writes a profile per thread (tsx's loader has one too).
      const dir = join(HERE, '.profiles', target.id);
      mkdirSync(dir, { recursive: true });
      execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
    }
    const args: HostArgs = { target: target.id, sizes, diagnose, gcBetweenReps };
    const child = fork(join(HERE, 'host.ts'), [JSON.stringify(args)], {
      execArgv,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    // Whatever a library prints must not reach stdout, which carries JSON lines only.
    const relay = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n'))
        if (line.trim()) process.stderr.write(`  [${target.id}] ${line}\n`);
    };
    child.stdout!.on('data', relay);
    child.stderr!.on('data', relay);
    const host = new Host(target, child);
    const ready = await host.next();
    return { host, ready };
  }

  private next(): Promise<FromHost> {
    if (this.exited)
      return Promise.resolve({
        type: 'error',
        message: `benchmark process of ${this.target.id} ${this.exited}`,
      });
    return new Promise((resolve) => (this.pending = { resolve }));
  }

  async measure(m: Extract<ToHost, { type: 'measure' }>): Promise<Sample> {
    const reply = this.next();
    this.child.send(m);
    const r = await Promise.race([reply, timeout(MEASURE_TIMEOUT_MS, undefined)]);
    if (r === undefined) {
      // A wedged system must not hang the whole run: the process cleans up on SIGTERM (its
      // database dropped, a Restate server stopped), and its remaining jobs report the error.
      this.child.kill('SIGTERM');
      throw new Error(`no answer within ${MEASURE_TIMEOUT_MS / 1000} s; its process was ended`);
    }
    if (r.type === 'sample') return r.sample;
    throw new Error(r.type === 'error' ? r.message : `unexpected reply ${r.type}`);
  }

  async close(): Promise<Record<string, unknown> | undefined> {
    if (this.exited) return undefined;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    const reply = this.next();
    this.child.send({ type: 'close' } satisfies ToHost);
    const r = await Promise.race([reply, timeout(30_000, undefined)]);
    if (r?.type === 'error') log(`  ${this.target.id}: close failed: ${r.message}`);
    if ((await Promise.race([exited.then(() => true), timeout(10_000, false)])) === false) {
      log(`  ${this.target.id}: still running 10 s after close; ending it`);
      this.child.kill('SIGKILL');
    }
    return r?.type === 'closed' ? r.diagnostics : undefined;
  }
}

interface Job extends ResultJob {
  host: Host;
}

// ---------------------------------------------------------------------------------------------
// Output

let outFile: string | undefined;
function emit(line: object): void {
  const text = `${JSON.stringify(line)}\n`;
  process.stdout.write(text);
  if (outFile) appendFileSync(outFile, text);
}
function log(message: string): void {
  process.stderr.write(`${message}\n`);
}
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Resolves with `value` after `ms`, without keeping the process alive for it. */
const timeout = <T>(ms: number, value: T) =>
  new Promise<T>((resolve) => setTimeout(() => resolve(value), ms).unref());
/** The commit measured, and the engine files that differ from it (the tree is shared and busy). */
function gitState(): { commit: string; dirty: string[] } | { error: string } {
  try {
    const root = join(HERE, '..');
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], {
      cwd: root,
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.trim());
    return { commit, dirty };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  checkPeersInstalled(options.targets);
  outFile = options.out;
  if (outFile) writeFileSync(outFile, '');
  const started = Date.now();
  const facts = await serverFacts();
  emit({
    type: 'meta',
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    loadavg: loadavg().map((x) => sig(x, 3)),
    postgres: facts,
    sizes: options.sizes,
    reps: options.reps,
    concurrency: options.concurrency,
    git: gitState(),
    diagnose: options.diagnose,
    peers: peerVersions(options.targets),
    durability: Object.fromEntries(
      options.targets.filter((t) => t.durability).map((t) => [t.id, t.durability]),
    ),
    method: `each system in its own process; untimed warm-up each (chain: ${options.chainWarmup} chains; fan-out: ${options.fanoutWarmup} passes at a tenth of the size; latency: one pass at a tenth); repetitions interleaved round robin, the order rotated by one each repetition; ${options.gcBetweenReps ? 'a forced full GC in each process before every measurement' : 'no forced GC'}; medians reported`,
  });
  log(
    `weft bench: ${options.benches.join(', ')} on ${options.targets.map((t) => t.id).join(', ')}`,
  );
  log(
    `  PostgreSQL ${facts.version}, fsync=${facts.fsync}, synchronous_commit=${facts.synchronous_commit}; node ${process.version}, ${cpus().length} cores`,
  );

  const allLines: ResultLine[] = [];
  const hosts = new Map<string, Host>();
  const failed = new Map<string, string>();
  const settingsOf = new Map<string, Record<string, number | string | boolean>>();
  for (const target of options.targets) {
    if (target.unavailable) continue;
    log(`  starting ${target.id}…`);
    try {
      const { host, ready } = await Host.start(
        target,
        options.sizes,
        options.cpuProf,
        options.diagnose,
        options.gcBetweenReps,
      );
      if (ready.type === 'ready') {
        hosts.set(target.id, host);
        settingsOf.set(target.id, ready.settings);
      } else {
        failed.set(target.id, ready.type === 'error' ? ready.message : `unexpected ${ready.type}`);
        await host.close();
      }
    } catch (error) {
      failed.set(target.id, error instanceof Error ? error.message : String(error));
    }
  }

  try {
    for (const bench of options.benches) {
      const lines: ResultLine[] = [];
      for (const target of options.targets) {
        if (target.unavailable)
          lines.push(unavailableLine(target, bench, target.unavailable, 'unavailable'));
        else if (failed.has(target.id))
          lines.push(
            unavailableLine(target, bench, `could not start: ${failed.get(target.id)!}`, 'error'),
          );
      }
      const jobs: Job[] = [];
      for (const [id, host] of hosts) {
        for (const variant of host.target.variants(bench, { concurrency: options.concurrency })) {
          jobs.push({
            target: host.target,
            host,
            bench,
            variant,
            settings: settingsOf.get(id) ?? {},
            samples: [],
          });
        }
      }
      const { runs, stepsPerRun } =
        bench === 'chain'
          ? { runs: 1, stepsPerRun: options.sizes.chainSteps }
          : bench === 'fanout'
            ? { runs: options.sizes.fanoutRuns, stepsPerRun: options.sizes.fanoutSteps }
            : { runs: options.sizes.latencyTriggers, stepsPerRun: 1 };
      const warmRuns = bench === 'chain' ? 1 : Math.max(10, Math.round(runs / 10));
      const warmRounds =
        bench === 'chain' ? options.chainWarmup : bench === 'fanout' ? options.fanoutWarmup : 1;
      log(
        `\n${bench}: ${runs} run(s) × ${stepsPerRun} steps, ${options.reps[bench]} rep(s), ${jobs.length} system/variant pairs`,
      );
      // The systems' order turns by one each repetition (and each system's variants with it), so
      // no system always runs first, or right after the same neighbour.
      const systems = [...new Set(jobs.map((j) => j.host))];
      const rotate = <T>(xs: T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);
      for (const host of hosts.values()) {
        const first = jobs.find((j) => j.host === host);
        if (!first) continue;
        try {
          for (let round = 0; round < warmRounds; round++) {
            await host.measure({
              type: 'measure',
              bench,
              variant: first.variant,
              runs: warmRuns,
              stepsPerRun,
            });
          }
        } catch (error) {
          for (const j of jobs.filter((x) => x.host === host))
            j.error = `warm-up failed: ${error instanceof Error ? error.message : String(error)}`;
        }
      }
      for (let rep = 0; rep < options.reps[bench]; rep++) {
        const order = rotate(systems, rep).flatMap((h) =>
          rotate(
            jobs.filter((j) => j.host === h),
            rep,
          ),
        );
        log(
          `  rep ${rep + 1}: load average ${loadavg()
            .map((x) => x.toFixed(2))
            .join(' ')}`,
        );
        for (const job of order) {
          if (job.error) continue;
          try {
            const sample = await job.host.measure({
              type: 'measure',
              bench,
              variant: job.variant,
              runs,
              stepsPerRun,
            });
            job.samples.push(sample);
            log(
              `  rep ${rep + 1} ${job.target.id} ${job.variant.name}: ${fmt(value(bench, sample), 4)} ${unitOf(job.target, bench)}${repNote(sample)}`,
            );
          } catch (error) {
            job.error = error instanceof Error ? error.message : String(error);
            log(`  rep ${rep + 1} ${job.target.id} ${job.variant.name}: FAILED ${job.error}`);
          }
          await sleep(100);
        }
      }
      lines.push(...jobs.map((j) => resultOf(j, options.sizes)));
      markHeadlines(lines);
      const order = (l: ResultLine) => TARGETS.findIndex((t) => t.id === l.target);
      lines.sort((a, b) => order(a) - order(b));
      for (const l of lines) emit(l);
      allLines.push(...lines);
    }
    const ratios = ratiosOf(allLines);
    for (const r of ratios) emit(r);
    const goals = goalsOf(allLines, ratios);
    for (const g of goals) emit(g);
    log(`\n${summary(allLines, ratios, goals)}`);
  } finally {
    const closed = await Promise.all(
      [...hosts.values()].map(async (h) => ({ target: h.target.id, diagnostics: await h.close() })),
    );
    for (const { target, diagnostics } of closed) {
      if (!diagnostics) continue;
      emit({ type: 'diagnostics', target, ...diagnostics });
      log(`\n${describeDiagnostics(target, diagnostics)}`);
    }
    emit({
      type: 'end',
      seconds: Math.round((Date.now() - started) / 1000),
      loadavg: loadavg().map((x) => sig(x, 3)),
    });
    log(
      `done in ${((Date.now() - started) / 1000).toFixed(0)} s (load average now ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')})`,
    );
  }
}

main().catch((error: unknown) => {
  log(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
