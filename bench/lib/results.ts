/**
 * From repetition samples to the JSON lines the bench prints: one `result` line per system ×
 * variant × bench (medians, min, max, per-step costs, latency percentiles, diagnose figures),
 * `ratio` lines (Weft against each peer and against the bare commit, with the issue's goals),
 * `goal` lines (issue 8's absolute limits) and the Markdown summary written to stderr.
 */
import type { Sample } from './protocol.js';
import { median, sig } from './stats.js';
import type { BenchName, Sizes, SystemTarget, Variant } from '../systems/system.js';

export const PEERS = ['graphile-worker', 'dbos', 'restate', 'bullmq'] as const;
/**
 * Goals of the ratio lines (ratio above 1: Weft is faster). Against Restate (issue 8): chain at
 * most half its ms/step, fan-out twice its steps/s; graphile-worker and DBOS: twice (issue 6);
 * BullMQ on Redis, which is not durable per step: matching its fan-out is the stretch goal.
 */
export const GOALS: Partial<Record<string, Partial<Record<BenchName, number>>>> = {
  restate: { chain: 2, fanout: 2 },
  'graphile-worker': { chain: 2, fanout: 2 },
  dbos: { chain: 2, fanout: 2 },
  bullmq: { fanout: 1 },
};

export interface Job {
  target: SystemTarget;
  bench: BenchName;
  variant: Variant;
  settings: Record<string, number | string | boolean>;
  samples: Sample[];
  error?: string;
}

export interface ResultLine {
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
  /** Lowest and highest 1-minute load average seen at the start or end of a repetition. */
  load1Range?: [number, number];
  /** Latency bench: medians over the repetitions of each repetition's percentiles, ms. */
  latency?: { triggers: number; p50: number; p90: number; p99: number; max: number };
  /** --diagnose on PostgreSQL: medians over the repetitions, per step. */
  diagnose?: DiagnoseSummary;
  /** What the system persists per step and where. */
  durability?: string;
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
    /** Bytes the system's own server process wrote to storage (Restate, Redis). */
    serverWriteBytes?: number;
    /** CPU the rest of the machine used meanwhile (Sample.otherCpuMs). */
    otherCpuMs?: number;
  };
  /** Per repetition, in the order run: the rest of the machine's CPU per step (ms). */
  otherCpuPerStep?: number[];
}

export interface DiagnoseSummary {
  /** Row writes per step: inserts + updates + deletes over every table of the system. */
  rowWritesPerStep: number;
  tables: Record<string, { inserts: number; updates: number; hotUpdates: number; deletes: number }>;
  /** pg_current_wal_lsn delta per step: the whole server (others' writes included). */
  walBytesPerStep: number;
  /** This database's transactions' WAL records per step (pg_walinspect). */
  ownWalBytesPerStep?: number;
  /** Of which full-page images (they grow with the server's checkpoint frequency). */
  ownWalFpiBytesPerStep?: number;
  /** Chain only: a bare one-row insert commit on the same database right after each rep, ms. */
  bareCommitMs?: number;
  /** Chain only: ms/step ÷ bare commit ms, per repetition, median. */
  stepsInBareCommits?: number;
}

export const unitOf = (target: SystemTarget, bench: BenchName): string =>
  target.unit?.[bench] ??
  (bench === 'chain' ? 'ms/step' : bench === 'fanout' ? 'steps/s' : 'ms p50');
export const higherIsBetter = (bench: BenchName): boolean => bench === 'fanout';
export const value = (bench: BenchName, s: Sample): number =>
  bench === 'chain'
    ? s.wallMs / s.steps
    : bench === 'fanout'
      ? s.steps / (s.wallMs / 1000)
      : (s.latency?.p50 ?? Number.NaN);

function diagnoseOf(job: Job): DiagnoseSummary | undefined {
  const reps = job.samples.filter((s) => s.diagnose);
  if (reps.length === 0) return undefined;
  const med = (pick: (s: Sample) => number | undefined): number | undefined => {
    const xs = reps.map(pick).filter((x): x is number => x !== undefined);
    return xs.length > 0 ? sig(median(xs), 3) : undefined;
  };
  const names = new Set(reps.flatMap((s) => Object.keys(s.diagnose!.tables)));
  const tables: DiagnoseSummary['tables'] = {};
  for (const name of [...names].sort()) {
    const of = (k: 'inserts' | 'updates' | 'hotUpdates' | 'deletes') =>
      med((s) => (s.diagnose!.tables[name]?.[k] ?? 0) / s.steps) ?? 0;
    tables[name] = {
      inserts: of('inserts'),
      updates: of('updates'),
      hotUpdates: of('hotUpdates'),
      deletes: of('deletes'),
    };
  }
  const out: DiagnoseSummary = {
    rowWritesPerStep:
      med(
        (s) =>
          Object.values(s.diagnose!.tables).reduce(
            (n, t) => n + t.inserts + t.updates + t.deletes,
            0,
          ) / s.steps,
      ) ?? 0,
    tables,
    walBytesPerStep: med((s) => s.diagnose!.walBytes / s.steps) ?? 0,
  };
  const own = med((s) =>
    s.diagnose!.ownWalBytes === undefined ? undefined : s.diagnose!.ownWalBytes / s.steps,
  );
  if (own !== undefined) out.ownWalBytesPerStep = own;
  const fpi = med((s) =>
    s.diagnose!.ownWalFpiBytes === undefined ? undefined : s.diagnose!.ownWalFpiBytes / s.steps,
  );
  if (fpi !== undefined) out.ownWalFpiBytesPerStep = fpi;
  const bare = med((s) => s.diagnose!.bareCommitMs);
  if (bare !== undefined) {
    out.bareCommitMs = bare;
    out.stepsInBareCommits = med((s) =>
      s.diagnose!.bareCommitMs ? s.wallMs / s.steps / s.diagnose!.bareCommitMs : undefined,
    );
  }
  return out;
}

export function resultOf(job: Job, sizes: Sizes): ResultLine {
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
        : bench === 'fanout'
          ? { runs: sizes.fanoutRuns, stepsPerRun: sizes.fanoutSteps }
          : { runs: sizes.latencyTriggers, stepsPerRun: 1 },
    settings: { ...job.settings, ...job.variant.settings },
    ...(target.durability ? { durability: target.durability } : {}),
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
  const written = per((s) =>
    s.serverWriteBytes === undefined ? undefined : s.serverWriteBytes / s.steps,
  );
  if (written !== undefined) perStep.serverWriteBytes = written;
  const other = per((s) => (s.otherCpuMs === undefined ? undefined : s.otherCpuMs / s.steps));
  if (other !== undefined) perStep.otherCpuMs = other;
  const loads = job.samples.flatMap((s) => [s.load1AtStart, s.load1]);
  const lat = job.samples.map((s) => s.latency).filter((l) => l !== undefined);
  const diagnose = diagnoseOf(job);
  return {
    ...base,
    status: 'ok',
    runs: values.length,
    median: sig(median(values)),
    min: sig(Math.min(...values)),
    max: sig(Math.max(...values)),
    samples: values.map((v) => sig(v)),
    load1: sig(median(job.samples.map((s) => s.load1)), 3),
    load1Range: [sig(Math.min(...loads), 3), sig(Math.max(...loads), 3)],
    ...(lat.length === job.samples.length && lat.length > 0
      ? {
          latency: {
            triggers: lat[0]!.n,
            p50: sig(median(lat.map((l) => l.p50)), 3),
            p90: sig(median(lat.map((l) => l.p90)), 3),
            p99: sig(median(lat.map((l) => l.p99)), 3),
            max: sig(median(lat.map((l) => l.max)), 3),
          },
        }
      : {}),
    ...(diagnose ? { diagnose } : {}),
    ...(job.samples.every((s) => s.triggeredMs !== undefined)
      ? { triggeredMs: sig(median(job.samples.map((s) => s.triggeredMs!)), 4) }
      : {}),
    perStep,
    ...(job.samples.every((s) => s.otherCpuMs !== undefined)
      ? { otherCpuPerStep: job.samples.map((s) => sig(s.otherCpuMs! / s.steps, 3)) }
      : {}),
  };
}

export function unavailableLine(
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
export function markHeadlines(lines: ResultLine[]): void {
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

export interface RatioLine {
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

export function ratiosOf(lines: ResultLine[]): RatioLine[] {
  const heads = lines.filter((l) => l.headline);
  const out: RatioLine[] = [];
  for (const weft of heads.filter((l) => l.system === 'weft')) {
    const bench = weft.bench;
    for (const peer of heads.filter(
      (l) => l.bench === bench && (PEERS as readonly string[]).includes(l.system),
    )) {
      const lowerIsBetter = !higherIsBetter(bench);
      const ratio = sig(lowerIsBetter ? peer.median / weft.median : weft.median / peer.median, 3);
      const goal = GOALS[peer.system]?.[bench];
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
        ratioOfBest: sig(lowerIsBetter ? peer.min / weft.min : weft.max / peer.max, 3),
        medians: [weft.median, peer.median],
        unit: [weft.unit, peer.unit],
        meaning:
          bench === 'chain'
            ? `${peer.system} ms/step ÷ weft ms/step (above 1: weft is faster)`
            : bench === 'fanout'
              ? `weft steps/s ÷ ${peer.system} steps/s (above 1: weft is faster)`
              : `${peer.system} p50 ÷ weft p50, trigger → step started (above 1: weft is faster)`,
        ...(goal === undefined ? {} : { goal, meetsGoal: ratio >= goal }),
      });
    }
    const baseline = heads.find(
      (l) => l.bench === bench && l.system === 'baseline' && l.backend === weft.backend,
    );
    if (baseline && bench !== 'latency') {
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

export interface GoalLine {
  type: 'goal';
  /**
   * What issue 8's "Done means" asks, in words (its sizes: chain of 100 steps, fan-out of 1,000
   * runs × 3 steps, 1,000 triggers; the result lines carry the sizes this run used).
   */
  goal: string;
  value: number;
  limit: number;
  unit: string;
  met: boolean;
}

/** Issue 8's figures, checked against this run's headlines (absent when a side was not measured). */
export function goalsOf(lines: ResultLine[], ratios: RatioLine[]): GoalLine[] {
  const out: GoalLine[] = [];
  const head = (bench: BenchName, target: string) =>
    lines.find((l) => l.headline && l.bench === bench && l.target === target);
  const ratio = (bench: BenchName, backend: string, vs: string) =>
    ratios.find((r) => r.bench === bench && r.backend === backend && r.vs === vs);
  const atMost = (goal: string, value: number, limit: number, unit: string) =>
    out.push({ type: 'goal', goal, value, limit, unit, met: value <= limit });
  const atLeast = (goal: string, value: number, limit: number, unit: string) =>
    out.push({ type: 'goal', goal, value, limit, unit, met: value >= limit });

  const chainVsRestate = ratio('chain', 'postgres', 'restate');
  if (chainVsRestate)
    atMost(
      'chain: Weft-PG ms/step ≤ 0.5× Restate',
      sig(1 / chainVsRestate.ratio, 3),
      0.5,
      '× Restate ms/step',
    );
  const chainVsBare = ratio('chain', 'postgres', 'baseline');
  if (chainVsBare)
    atMost('chain: Weft-PG ms/step ≤ 3× the bare commit', chainVsBare.ratio, 3, 'bare commits');
  const fanVsRestate = ratio('fanout', 'postgres', 'restate');
  if (fanVsRestate)
    atLeast('fan-out: Weft-PG steps/s ≥ 2× Restate', fanVsRestate.ratio, 2, '× Restate steps/s');
  const fanVsBull = ratio('fanout', 'postgres', 'bullmq');
  if (fanVsBull)
    atLeast(
      'stretch: fan-out steps/s ≥ BullMQ on Redis (not durable per step)',
      fanVsBull.ratio,
      1,
      '× BullMQ steps/s',
    );
  const lat = head('latency', 'weft-pg')?.latency;
  if (lat) {
    atMost('trigger → first step started p50 ≤ 2 ms (Weft-PG)', lat.p50, 2, 'ms');
    atMost('trigger → first step started p99 ≤ 10 ms (Weft-PG)', lat.p99, 10, 'ms');
  }
  const pglite = head('chain', 'weft-pglite');
  if (pglite) atMost('PGlite chain ≤ 1 ms/step', pglite.median, 1, 'ms/step');
  return out;
}
