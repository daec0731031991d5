/**
 * The one small interface every system under test implements. A system is opened once per
 * benchmark process (its own database, schema, worker), then asked for timed repetitions.
 *
 * A measurement returns the wall time of its timed region only: from just before the first
 * trigger to the moment the caller learns that the last run ended (its final commit is visible).
 * Setup, warm-up and verification happen outside it.
 */
export type Backend = 'postgres' | 'pglite';
export type BenchName = 'chain' | 'fanout';

export interface Sizes {
  /** Steps of the one chained run. */
  chainSteps: number;
  /** Runs triggered at once in the fan-out. */
  fanoutRuns: number;
  /** Chained steps per fan-out run. */
  fanoutSteps: number;
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
  /** Checks that every run really succeeded; called after the counters are read. */
  verify?(): Promise<void>;
}

export interface Session {
  /** Database on the shared PostgreSQL, for server-side accounting; undefined on PGlite. */
  readonly database: string | undefined;
  /** Settings of this system that hold for every variant (pool sizes, poll intervals...). */
  readonly settings: Record<string, number | string | boolean>;
  /** Round trips counted above the driver (Weft's executor), for backends the wire counter misses. */
  executorCounts?(): { roundTrips: number; transactions: number };
  /** Switch to a variant (restart a worker with another concurrency). Not timed. */
  configure(bench: BenchName, variant: Variant): Promise<void>;
  chain(steps: number): Promise<Timed>;
  fanout(runs: number, stepsPerRun: number): Promise<Timed>;
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
  system: 'weft' | 'graphile-worker' | 'dbos' | 'baseline';
  backend: Backend;
  /** Units of the two benches, when they differ from steps (the baseline measures commits). */
  unit?: { chain: string; fanout: string };
  /** Why this target cannot run here; the runner reports it instead of measuring. */
  unavailable?: string;
  /** Variants measured per bench (the best median is the headline, all are reported). */
  variants(bench: BenchName, options: { concurrency: number[] }): Variant[];
  /** Load the module that drives the system (only in the benchmark process for this target). */
  open(sizes: Sizes, options: OpenOptions): Promise<Session>;
}
