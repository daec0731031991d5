/**
 * Weft's benchmarks with its peers side by side, in one run on one machine and one PostgreSQL.
 *
 *   npm run bench                              # everything (about 5 minutes)
 *   npm run bench -- --quick                   # smoke run: 1 rep, small sizes
 *   npm run bench -- --only chain --systems weft-pg,graphile
 *
 * stdout carries JSON lines only (a `meta` line, one `result` line per system × variant × bench,
 * then `ratio` lines); progress and a readable summary go to stderr.
 *
 * Method: every system runs in a process of its own (bench/host.ts), all started up front and
 * kept alive; each system gets one untimed warm-up, then the repetitions are interleaved across
 * systems (round robin, rotating who goes first), so drift in a shared, noisy machine spreads over
 * everyone instead of landing on whoever ran last. Medians of the repetitions are reported with
 * min, max and every sample; ratios are computed from medians of this same run.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { serverFacts } from './lib/postgres.js';
import type { FromHost, HostArgs, Sample, ToHost } from './lib/protocol.js';
import { median, sig } from './lib/stats.js';
import { TARGETS } from './systems/index.js';
import type { BenchName, Diagnose, Sizes, SystemTarget, Variant } from './systems/system.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BENCHES: BenchName[] = ['chain', 'fanout'];
const PEERS = ['graphile-worker', 'dbos'] as const;
/** The issue's goal: Weft at least twice as fast as each peer on both benches. */
const GOAL = 2;

const HELP = `Usage: npm run bench -- [options]

  --only <benches>        chain,fanout (default: both)
  --systems <ids>         comma list of: ${TARGETS.map((t) => t.id).join(', ')}
                          (a name without -pg/-pglite selects both, e.g. weft,graphile)
  --reps <n>              repetitions for both benches (default: chain 5, fanout 3)
  --chain-reps <n>        repetitions of the chain
  --fanout-reps <n>       repetitions of the fan-out
  --concurrency <list>    worker concurrencies swept in the fan-out (default 10,25,50)
  --chain-steps <n>       steps of the chain (default 100)
  --fanout-runs <n>       runs of the fan-out (default 1000)
  --fanout-steps <n>      chained steps per fan-out run (default 3)
  --quick                 smoke run: 1 rep, chain 100, fan-out 100 runs, concurrency 25
  --out <file>            also write the JSON lines to <file>
  --cpu-prof              write V8 CPU profiles to bench/.profiles/<system>/
  --diagnose              also report Weft's server time per SQL function and rows written per
                          step (track_functions on: slightly slower; not for headline figures)
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
      concurrency: { type: 'string' },
      'chain-steps': { type: 'string' },
      'fanout-runs': { type: 'string' },
      'fanout-steps': { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
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
  const concurrency = (list(values.concurrency) ?? (quick ? ['25'] : ['10', '25', '50'])).map((c) =>
    int('concurrency', c, 1),
  );
  return {
    benches,
    targets,
    reps: {
      chain: int('chain-reps', values['chain-reps'], reps || (quick ? 1 : 5)),
      fanout: int('fanout-reps', values['fanout-reps'], reps || (quick ? 1 : 3)),
    },
    concurrency,
    sizes: {
      chainSteps: int('chain-steps', values['chain-steps'], 100),
      fanoutRuns: int('fanout-runs', values['fanout-runs'], quick ? 100 : 1000),
      fanoutSteps: int('fanout-steps', values['fanout-steps'], 3),
    },
    out: values.out,
    cpuProf: values['cpu-prof'],
    diagnose: values.explain ? 'statements' : values.diagnose ? 'functions' : 'off',
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
  ): Promise<{ host: Host; ready: FromHost }> {
    const execArgv = ['--import', 'tsx', '--expose-gc'];
    if (cpuProf) {
      // One directory per system: V8 writes a profile per thread (tsx's loader has one too).
      const dir = join(HERE, '.profiles', target.id);
      mkdirSync(dir, { recursive: true });
      execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
    }
    const args: HostArgs = { target: target.id, sizes, diagnose };
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
    const r = await reply;
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

// ---------------------------------------------------------------------------------------------
// Results

interface Job {
  target: SystemTarget;
  host: Host;
  bench: BenchName;
  variant: Variant;
  settings: Record<string, number | string | boolean>;
  samples: Sample[];
  error?: string;
}

interface ResultLine {
  type: 'result';
  bench: BenchName;
  system: string;
  backend: string;
  target: string;
  variant: string | null;
  status: 'ok' | 'unavailable' | 'error';
  reason?: string;
  /** Repetitions measured. */
  runs: number;
  median: number;
  min: number;
  max: number;
  unit: string;
  samples: number[];
  /** Median time until the last trigger call returned, ms (the rest of the wall time is draining). */
  triggeredMs?: number;
  /** Median 1-minute load average of the machine at the end of the repetitions (2 cores). */
  load1?: number;
  /** Best variant of this system for this bench: the one ratios use. */
  headline?: boolean;
  size?: { runs: number; stepsPerRun: number };
  settings?: Record<string, number | string | boolean>;
  /** Medians over the repetitions, per step (per commit for the baseline). */
  perStep?: {
    wallMs: number;
    clientCpuMs: number;
    serverCpuMs?: number;
    roundTrips?: number;
    transactions?: number;
    /** Minimum over the repetitions: server-wide xids, so other activity can only add. */
    writeTransactions?: number;
  };
}

const unitOf = (target: SystemTarget, bench: BenchName): string =>
  target.unit?.[bench] ?? (bench === 'chain' ? 'ms/step' : 'steps/s');
const higherIsBetter = (bench: BenchName): boolean => bench === 'fanout';
const value = (bench: BenchName, s: Sample): number =>
  bench === 'chain' ? s.wallMs / s.steps : s.steps / (s.wallMs / 1000);

function resultOf(job: Job, sizes: Sizes): ResultLine {
  const { target, bench } = job;
  const base = {
    type: 'result' as const,
    bench,
    system: target.system,
    backend: target.backend,
    target: target.id,
    variant: job.variant.name,
    unit: unitOf(target, bench),
    size:
      bench === 'chain'
        ? { runs: 1, stepsPerRun: sizes.chainSteps }
        : { runs: sizes.fanoutRuns, stepsPerRun: sizes.fanoutSteps },
    settings: { ...job.settings, ...job.variant.settings },
  };
  if (job.error || job.samples.length === 0) {
    return {
      ...base,
      status: 'error',
      reason: job.error ?? 'no sample',
      runs: 0,
      median: Number.NaN,
      min: Number.NaN,
      max: Number.NaN,
      samples: [],
    };
  }
  const values = job.samples.map((s) => value(bench, s));
  const per = (pick: (s: Sample) => number | undefined): number | undefined => {
    const xs = job.samples.map((s) => pick(s)).filter((x): x is number => x !== undefined);
    return xs.length === job.samples.length ? sig(median(xs)) : undefined;
  };
  const perStep: NonNullable<ResultLine['perStep']> = {
    wallMs: sig(median(job.samples.map((s) => s.wallMs / s.steps))),
    clientCpuMs: sig(median(job.samples.map((s) => s.clientCpuMs / s.steps))),
  };
  const serverCpu = per((s) => (s.serverCpuMs === undefined ? undefined : s.serverCpuMs / s.steps));
  if (serverCpu !== undefined) perStep.serverCpuMs = serverCpu;
  const rt = per((s) => {
    const n = s.wireRoundTrips ?? s.executorRoundTrips;
    return n === undefined ? undefined : n / s.steps;
  });
  if (rt !== undefined) perStep.roundTrips = rt;
  const tx = per((s) => {
    const n = s.wireTransactions ?? s.executorTransactions;
    return n === undefined ? undefined : n / s.steps;
  });
  if (tx !== undefined) perStep.transactions = tx;
  const writes = job.samples
    .map((s) => s.writeTransactions)
    .filter((x): x is number => x !== undefined);
  if (writes.length > 0)
    perStep.writeTransactions = sig(Math.min(...writes.map((w, i) => w / job.samples[i]!.steps)));
  return {
    ...base,
    status: 'ok',
    runs: values.length,
    median: sig(median(values)),
    min: sig(Math.min(...values)),
    max: sig(Math.max(...values)),
    samples: values.map((v) => sig(v)),
    load1: sig(median(job.samples.map((s) => s.load1)), 3),
    ...(job.samples.every((s) => s.triggeredMs !== undefined)
      ? { triggeredMs: sig(median(job.samples.map((s) => s.triggeredMs!)), 4) }
      : {}),
    perStep,
  };
}

function unavailableLine(
  target: SystemTarget,
  bench: BenchName,
  reason: string,
  status: 'unavailable' | 'error',
): ResultLine {
  return {
    type: 'result',
    bench,
    system: target.system,
    backend: target.backend,
    target: target.id,
    variant: null,
    status,
    reason,
    runs: 0,
    median: Number.NaN,
    min: Number.NaN,
    max: Number.NaN,
    unit: unitOf(target, bench),
    samples: [],
  };
}

/** Mark each target's best variant (lowest ms/step, highest steps/s) as its headline. */
function markHeadlines(lines: ResultLine[]): void {
  const byTarget = new Map<string, ResultLine[]>();
  for (const l of lines)
    if (l.status === 'ok') byTarget.set(l.target, [...(byTarget.get(l.target) ?? []), l]);
  for (const group of byTarget.values()) {
    const best = group.reduce((a, b) =>
      (higherIsBetter(a.bench) ? b.median > a.median : b.median < a.median) ? b : a,
    );
    best.headline = true;
  }
}

interface RatioLine {
  type: 'ratio';
  bench: BenchName;
  system: 'weft';
  backend: string;
  variant: string | null;
  vs: string;
  vsBackend: string;
  vsVariant: string | null;
  /** From the medians: the figure to quote. */
  ratio: number;
  /** From each side's best repetition (min ms/step, max steps/s): interference only slows a rep down. */
  ratioOfBest: number;
  /** The two medians compared (weft's first). */
  medians: [number, number];
  unit: [string, string];
  meaning: string;
  goal?: number;
  meetsGoal?: boolean;
}

function ratiosOf(lines: ResultLine[]): RatioLine[] {
  const heads = lines.filter((l) => l.headline);
  const out: RatioLine[] = [];
  for (const weft of heads.filter((l) => l.system === 'weft')) {
    const bench = weft.bench;
    for (const peer of heads.filter(
      (l) => l.bench === bench && (PEERS as readonly string[]).includes(l.system),
    )) {
      const ratio = sig(
        bench === 'chain' ? peer.median / weft.median : weft.median / peer.median,
        3,
      );
      out.push({
        type: 'ratio',
        bench,
        system: 'weft',
        backend: weft.backend,
        variant: weft.variant,
        vs: peer.system,
        vsBackend: peer.backend,
        vsVariant: peer.variant,
        ratio,
        ratioOfBest: sig(bench === 'chain' ? peer.min / weft.min : weft.max / peer.max, 3),
        medians: [weft.median, peer.median],
        unit: [weft.unit, peer.unit],
        meaning:
          bench === 'chain'
            ? `${peer.system} ms/step ÷ weft ms/step (above 1: weft is faster)`
            : `weft steps/s ÷ ${peer.system} steps/s (above 1: weft is faster)`,
        goal: GOAL,
        meetsGoal: ratio >= GOAL,
      });
    }
    const baseline = heads.find(
      (l) => l.bench === bench && l.system === 'baseline' && l.backend === weft.backend,
    );
    if (baseline) {
      out.push({
        type: 'ratio',
        bench,
        system: 'weft',
        backend: weft.backend,
        variant: weft.variant,
        vs: 'baseline',
        vsBackend: baseline.backend,
        vsVariant: baseline.variant,
        ratio: sig(weft.median / baseline.median, 3),
        ratioOfBest: sig(bench === 'chain' ? weft.min / baseline.min : weft.max / baseline.max, 3),
        medians: [weft.median, baseline.median],
        unit: [weft.unit, baseline.unit],
        meaning:
          bench === 'chain'
            ? 'weft ms/step ÷ bare insert-commit ms: the per-step cost counted in commit round trips'
            : 'weft steps/s ÷ bare insert-commits/s from 10 connections: the share of the commit throughput one step gets',
      });
    }
  }
  return out;
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
const fmt = (x: number | undefined, d = 3): string =>
  x === undefined || Number.isNaN(x) ? '–' : String(sig(x, d));

function summary(lines: ResultLine[], ratios: RatioLine[]): string {
  const rows = [
    '| bench | system | backend | variant | median | min | max | unit | client CPU ms/step | server CPU ms/step | round trips/step | txns/step | write txns/step | load |',
    '| --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const l of lines) {
    if (l.status !== 'ok') {
      rows.push(`| ${l.bench} | ${l.system} | ${l.backend} | – | ${l.status} | | | | | | | | | |`);
      continue;
    }
    const p = l.perStep!;
    const med = l.headline ? `**${fmt(l.median, 4)}**` : fmt(l.median, 4);
    rows.push(
      `| ${l.bench} | ${l.system} | ${l.backend} | ${l.variant}${l.headline ? ' (best)' : ''} | ${med} | ${fmt(l.min)} | ${fmt(l.max)} | ${l.unit} | ${fmt(p.clientCpuMs)} | ${fmt(p.serverCpuMs)} | ${fmt(p.roundTrips)} | ${fmt(p.transactions)} | ${fmt(p.writeTransactions)} | ${fmt(l.load1, 2)} |`,
    );
  }
  const rat = [
    '| bench | weft on | vs | medians | ratio | ratio of best reps | meaning |',
    '| --- | --- | --- | --- | ---: | ---: | --- |',
  ];
  for (const r of ratios)
    rat.push(
      `| ${r.bench} | ${r.backend} (${r.variant}) | ${r.vs} on ${r.vsBackend} (${r.vsVariant}) | ${fmt(r.medians[0], 4)} vs ${fmt(r.medians[1], 4)} ${r.unit[1]} | ${fmt(r.ratio)}× | ${fmt(r.ratioOfBest)}× | ${r.meaning} |`,
    );
  return `${rows.join('\n')}\n\n${rat.join('\n')}\n`;
}

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

function describeDiagnostics(target: string, d: Record<string, unknown>): string {
  const fns = (d.functions ?? []) as Array<{
    name: string;
    callsPerStep: number;
    selfMsPerStep: number;
    totalMsPerStep: number;
  }>;
  const tables = (d.tables ?? []) as Array<{
    name: string;
    insertsPerStep: number;
    updatesPerStep: number;
    hotUpdatesPerStep: number;
    deletesPerStep: number;
  }>;
  const out = [
    `${target}: server time per step by SQL function over ${String(d.steps)} steps (self ms / total ms / calls)`,
  ];
  for (const f of fns)
    out.push(`  ${f.name}: ${f.selfMsPerStep} / ${f.totalMsPerStep} / ${f.callsPerStep}`);
  out.push(`${target}: rows written per step (insert / update (HOT) / delete)`);
  for (const t of tables)
    out.push(
      `  ${t.name}: ${t.insertsPerStep} / ${t.updatesPerStep} (${t.hotUpdatesPerStep}) / ${t.deletesPerStep}`,
    );
  const stmts = (d.statements ?? []) as Array<{
    statement: string;
    callsPerStep: number;
    msPerStep: number;
    msPerCall: number;
  }>;
  if (stmts.length > 0)
    out.push(
      `${target}: statement durations per step, nested included (ms/step | calls/step | ms/call)`,
    );
  for (const st of stmts.slice(0, 25))
    out.push(`  ${st.msPerStep} | ${st.callsPerStep} | ${st.msPerCall} | ${st.statement}`);
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
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
      const runs = bench === 'chain' ? 1 : options.sizes.fanoutRuns;
      const stepsPerRun = bench === 'chain' ? options.sizes.chainSteps : options.sizes.fanoutSteps;
      const warmRuns = bench === 'chain' ? 1 : Math.max(10, Math.round(runs / 10));
      log(
        `\n${bench}: ${runs} run(s) × ${stepsPerRun} steps, ${options.reps[bench]} rep(s), ${jobs.length} system/variant pairs`,
      );
      for (const host of hosts.values()) {
        const first = jobs.find((j) => j.host === host);
        if (!first) continue;
        try {
          await host.measure({
            type: 'measure',
            bench,
            variant: first.variant,
            runs: warmRuns,
            stepsPerRun,
          });
        } catch (error) {
          for (const j of jobs.filter((x) => x.host === host))
            j.error = `warm-up failed: ${error instanceof Error ? error.message : String(error)}`;
        }
      }
      for (let rep = 0; rep < options.reps[bench]; rep++) {
        const order = jobs.map((_, i) => jobs[(i + rep) % jobs.length]!);
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
              `  rep ${rep + 1} ${job.target.id} ${job.variant.name}: ${fmt(value(bench, sample), 4)} ${unitOf(job.target, bench)}`,
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
    log(`\n${summary(allLines, ratios)}`);
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
