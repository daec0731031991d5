/**
 * The one small interface every system under test implements. A system is opened once per
 * benchmark process (its own database, schema, worker), then asked for timed repetitions.
 *
 * A measurement returns the wall time of its timed region only: from just before the first
 * trigger to the moment the caller learns that the last run ended (its final commit is visible).
 * Setup, warm-up and verification happen outside it.
 */
/** Where a system keeps its durable state: the peers that are not on PostgreSQL name their own. */
export type Backend = 'postgres' | 'pglite' | 'restate' | 'redis';
/**
 * chain: one run of N sequential steps (ms/step); fanout: many runs at once (steps/s); latency:
 * runs of one step triggered one at a time, from the trigger call to the step's function starting
 * (ms, p50 and p99).
 */
export type BenchName = 'chain' | 'fanout' | 'latency';

export interface Sizes {
  /** Steps of the one chained run. */
  chainSteps: number;
  /** Runs triggered at once in the fan-out. */
  fanoutRuns: number;
  /** Chained steps per fan-out run. */
  fanoutSteps: number;
  /** One-step runs triggered one after another in the latency bench. */
  latencyTriggers: number;
}

/** A setting a system is measured under (e.g. a worker concurrency); `name` labels the JSON line. */
export interface Variant {
  name: string;
  settings: Record<string, number | string | boolean>;
}

export interface Timed {
  wallMs: number;
  /** Units of work done in the timed region: steps (or commits for the baseline). */
  steps: number;
  /** When the last trigger call returned (every run durably created), from the same start. */
  triggeredMs?: number;
  /**
   * Latency bench only: per trigger, ms from just before the trigger call to the moment the
   * step's function began (read in the same process, on the same clock).
   */
  latenciesMs?: number[];
  /** Checks that every run really succeeded; called after the counters are read. */
  verify?(): Promise<void>;
}

export interface Session {
  /** Database on the shared PostgreSQL, for server-side accounting; undefined on PGlite. */
  readonly database: string | undefined;
  /** Settings of this system that hold for every variant (pool sizes, poll intervals...). */
  readonly settings: Record<string, number | string | boolean>;
  /**
   * CPU (ms) and storage writes (bytes) so far of the system's own server process, for systems
   * whose server is not PostgreSQL (Restate, Redis): the counterpart of the backends' CPU.
   */
  serverProcess?(): Promise<{ cpuMs: number; writeBytes?: number } | undefined>;
  /** Round trips counted above the driver (Weft's executor), for backends the wire counter misses. */
  executorCounts?(): { roundTrips: number; transactions: number };
  /** Switch to a variant (restart a worker with another concurrency). Not timed. */
  configure(bench: BenchName, variant: Variant): Promise<void>;
  chain(steps: number): Promise<Timed>;
  fanout(runs: number, stepsPerRun: number): Promise<Timed>;
  /**
   * `triggers` one-step runs, one at a time: trigger, note when the step's function starts, wait
   * for the run to end, next. Returns every trigger's latency. Absent: not measured.
   */
  latency?(triggers: number): Promise<Timed>;
  /**
   * Stop everything and drop the database. May return diagnostics gathered over the whole session
   * (warm-ups included), e.g. server time per SQL function.
   */
  close(): Promise<Diagnostics | void>;
}

export type Diagnostics = Record<string, unknown>;

/**
 * Server-side diagnostics, where a system supports them: `functions` = time per SQL function and
 * rows written per table; `statements` = that plus every statement's duration (auto_explain).
 */
export type Diagnose = 'off' | 'functions' | 'statements';

export interface OpenOptions {
  diagnose: Diagnose;
}

export interface SystemTarget {
  /** `weft-pg`, `graphile-pg`, ... (what `--systems` selects). */
  id: string;
  system: 'weft' | 'graphile-worker' | 'dbos' | 'restate' | 'bullmq' | 'baseline';
  backend: Backend;
  /** Units of the benches, when they differ from steps (the baseline measures commits). */
  unit?: Partial<Record<BenchName, string>>;
  /**
   * Packages of bench/package.json this target loads (the peers): when one is not installed the
   * runner stops and says `npm --prefix bench install`.
   */
  packages?: string[];
  /** What the system persists per step and where (printed in the meta line and RESULTS.md). */
  durability?: string;
  /** Why this target cannot run here; the runner reports it instead of measuring. */
  unavailable?: string;
  /** Variants measured per bench (the best median is the headline, all are reported). */
  variants(bench: BenchName, options: { concurrency: number[] }): Variant[];
  /** Load the module that drives the system (only in the benchmark process for this target). */
  open(sizes: Sizes, options: OpenOptions): Promise<Session>;
}
