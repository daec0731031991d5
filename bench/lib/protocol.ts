/** Messages between the runner (bench/run.ts) and one benchmark process (bench/host.ts). */
import type { BenchName, Diagnose, Sizes, Variant } from '../systems/system.js';
import type { RepDiagnosis } from './diagnose.js';

export interface HostArgs {
  target: string;
  sizes: Sizes;
  diagnose: Diagnose;
  /** Force a full GC before every measurement (run.ts, `--gc-between-reps`). */
  gcBetweenReps: boolean;
}

export type ToHost =
  | { type: 'measure'; bench: BenchName; variant: Variant; runs: number; stepsPerRun: number }
  | { type: 'close' };

/** One timed repetition and what it cost. Counts cover the timed region only. */
export interface Sample {
  wallMs: number;
  steps: number;
  /** When the last trigger returned, from the same start (runs all durably created by then). */
  triggeredMs?: number;
  /** CPU time of the benchmark process (the system's client side; on PGlite also the database). */
  clientCpuMs: number;
  /**
   * CPU time of the PostgreSQL backends serving the system's database (local server only), or
   * of the system's own server process (Restate, Redis).
   */
  serverCpuMs?: number;
  /**
   * CPU ms the rest of the machine used during the repetition (its /proc/stat busy time less
   * the client and server CPU above; 10 ms ticks): how much ran beside the system under test.
   */
  otherCpuMs?: number;
  /** Bytes the system's own server process wrote to storage (/proc/<pid>/io; Restate, Redis). */
  serverWriteBytes?: number;
  /** Latency bench: trigger → step started, ms, over this repetition's triggers. */
  latency?: { n: number; p50: number; p90: number; p99: number; max: number };
  /** --diagnose on PostgreSQL: rows and WAL written in the repetition, and a bare commit. */
  diagnose?: RepDiagnosis;
  /** Statements the process's `pg` clients sent (PostgreSQL only). */
  wireRoundTrips?: number;
  /** Transactions those statements formed (a statement outside `begin` is one). */
  wireTransactions?: number;
  /** Statements and transactions Weft asked of its executor (both backends). */
  executorRoundTrips?: number;
  executorTransactions?: number;
  /** Transaction ids assigned on the whole server: write transactions (others' activity adds). */
  writeTransactions?: number;
  /** The machine's 1-minute load average when the repetition ended (how shared the machine was). */
  load1: number;
  /** The same when it began. */
  load1AtStart: number;
}

export type FromHost =
  | { type: 'ready'; database: string | null; settings: Record<string, number | string | boolean> }
  | { type: 'sample'; sample: Sample }
  | { type: 'error'; message: string }
  | { type: 'closed'; diagnostics?: Record<string, unknown> };
