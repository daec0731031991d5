/**
 * What the worker's parts share (the claim loop in worker.ts, the step executor, the attempt
 * committer, the lease keeper): the stores and registry, this worker's id and lease, its metrics,
 * the attempts in flight, and the worker's wake-ups. Built once by the Worker.
 */
import type { ClaimedStep } from '../store/rows.js';
import type { AttemptAbort } from './attempt-abort.js';
import type { RunStore } from '../store/run-store.js';
import type { AttemptReleaser } from './db-retry.js';
import type { GroupCommitter } from './group-commit.js';
import type { Logger } from './logger.js';
import type { EngineMetrics, MetricsRegistry } from './metrics.js';
import type { WorkflowRegistry } from './registry.js';

export interface WorkerOptions {
  /** Unique per process; default `<host>-<pid>-<random>`. */
  workerId?: string;
  /** Steps executed at once. Default 10. */
  concurrency?: number;
  /** How long a claim is valid without renewal. Default 30 s. */
  leaseMs?: number;
  /** How often leases are renewed. Default leaseMs / 3. */
  heartbeatMs?: number;
  /** Fallback poll when no NOTIFY arrives. Default 1 s. */
  pollIntervalMs?: number;
  /** How long stop() waits for running steps before aborting them. Default 30 s. */
  shutdownGraceMs?: number;
  /** Where claim latency, step durations and outcomes are counted. Default: the process registry. */
  metrics?: MetricsRegistry;
  /**
   * Fault points for tests: called at named moments with the claim; throwing or killing the
   * process there simulates a crash at that exact point. `afterCommitBeforeAck` runs when a
   * commit try has committed, before the worker reads its reply: throwing a connection error there
   * is a commit whose acknowledgement was lost (the worker retries it, fenced).
   */
  faults?: Partial<
    Record<
      'beforeExecute' | 'beforeCommit' | 'afterCommit' | 'afterCommitBeforeAck',
      (claim: ClaimedStep) => void | Promise<void>
    >
  >;
}

export interface InFlight {
  claim: ClaimedStep;
  abort: AttemptAbort;
  /** performance.now() until which the lease surely holds (measured from before the request). */
  leaseUntil: number;
  /** A renewal or the commit of this attempt failed because the database was away. */
  dbTrouble: boolean;
}

export interface WorkerResources {
  readonly runs: RunStore;
  readonly registry: WorkflowRegistry;
  readonly logger: Logger;
  readonly workerId: string;
  readonly leaseMs: number;
  readonly metrics: EngineMetrics;
  readonly faults: WorkerOptions['faults'];
  /** Attempts executing here, by step run id (the lease keeper renews them, cancels abort them). */
  readonly inflight: Map<string, InFlight>;
  readonly releaser: AttemptReleaser;
  readonly committer: GroupCommitter;
  /** False once stop() began: claim nothing more, chain nothing more. */
  isAccepting(): boolean;
  /** Wake the claim loop now. */
  wake(): void;
  /** Wake the claim loop after `ms` (a retry comes due), unless stopping. */
  wakeAfter(ms: number): void;
}
