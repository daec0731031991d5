/**
 * The run store: runs, step runs, attempts, dataclips and events across run locations, as a thin
 * facade over the run systems in ./runs/ that share one RunResources (locations, routing by id
 * tag, post-commit signals):
 *
 * - runs/run-creation.ts  createRun, idempotency
 * - runs/lineage.ts       rerun sources along `rerun_of`, rerun creation, state replay
 * - runs/queue.ts         claim, commit (alone or grouped), fail, release, park, leases, reaper
 * - runs/waitpoints.ts    a control node's state, approval tokens, child-run wake-ups, timers
 * - runs/run-lifecycle.ts cancel (with child runs) and resume
 * - runs/queries.ts       runs, step runs, dataclips, counts, metrics, keyset cursors
 * - runs/events.ts        run events, settled reads, SSE watchers
 *
 * The facade keeps one object for the engine, server and tests (`stores.runs`), so callers name a
 * verb, not a system; each method here only forwards. Its JSDoc (failure semantics included) is on
 * the system's method. New code may take the system it needs (`runs.queue`, `runs.queries`…).
 */
import { RunEvents } from './runs/events.js';
import { RunLineage } from './runs/lineage.js';
import { RunQueries } from './runs/queries.js';
import { RunQueue } from './runs/queue.js';
import { RunResources, type RunLocation } from './runs/resources.js';
import { RunCreation } from './runs/run-creation.js';
import { RunLifecycle } from './runs/run-lifecycle.js';
import { RunWaitpoints } from './runs/waitpoints.js';

export type { RunLocation } from './runs/resources.js';
export type { CreateRunParams, CreateRunResult } from './runs/run-creation.js';
export type { CreateRerunParams, RerunSource, RerunStepRow } from './runs/lineage.js';
export type { ListRunsQuery } from './runs/queries.js';
export {
  REAP_GRACE_AFTER_RESTART_MS,
  type CommitPayload,
  type CompleteResult,
  type FailResult,
  type ParkRequest,
} from './runs/queue.js';
export type { ControlState, WaitpointCompletion, WaitpointRecord } from './runs/waitpoints.js';

export class RunStore {
  readonly resources: RunResources;
  readonly creation: RunCreation;
  readonly lineage: RunLineage;
  readonly queries: RunQueries;
  readonly events: RunEvents;
  readonly lifecycle: RunLifecycle;
  readonly queue: RunQueue;
  readonly waitpoints: RunWaitpoints;

  constructor(
    locations: RunLocation[],
    defaultTag: string,
    home?: ConstructorParameters<typeof RunResources>[2],
  ) {
    this.resources = new RunResources(locations, defaultTag, home);
    this.queries = new RunQueries(this.resources);
    this.creation = new RunCreation(this.resources, this.queries);
    this.lineage = new RunLineage(this.resources);
    this.events = new RunEvents(this.resources);
    this.lifecycle = new RunLifecycle(this.resources);
    this.queue = new RunQueue(this.resources, this.lifecycle);
    this.waitpoints = new RunWaitpoints(this.resources);
  }

  get locations(): ReadonlyMap<string, RunLocation> {
    return this.resources.locations;
  }
  get defaultTag(): string {
    return this.resources.defaultTag;
  }
  /** Post-commit wake-ups (ready work, ended runs), coalesced per tick. */
  get signals(): RunResources['signals'] {
    return this.resources.signals;
  }
  /** The location an id routes to, or undefined for a malformed id. O(1), no query. */
  locationOf(id: string): RunLocation | undefined {
    return this.resources.locationOf(id);
  }

  // RunCreation (runs/run-creation.ts)
  createRun(...a: Parameters<RunCreation['createRun']>): ReturnType<RunCreation['createRun']> {
    return this.creation.createRun(...a);
  }

  // RunLineage (runs/lineage.ts)
  loadRerunSource(
    ...a: Parameters<RunLineage['loadRerunSource']>
  ): ReturnType<RunLineage['loadRerunSource']> {
    return this.lineage.loadRerunSource(...a);
  }
  createRerun(...a: Parameters<RunLineage['createRerun']>): ReturnType<RunLineage['createRerun']> {
    return this.lineage.createRerun(...a);
  }
  createRerunReplayingState(
    ...a: Parameters<RunLineage['createRerunReplayingState']>
  ): ReturnType<RunLineage['createRerunReplayingState']> {
    return this.lineage.createRerunReplayingState(...a);
  }
  loadSourceIterations(
    ...a: Parameters<RunLineage['loadSourceIterations']>
  ): ReturnType<RunLineage['loadSourceIterations']> {
    return this.lineage.loadSourceIterations(...a);
  }

  // RunQueries (runs/queries.ts)
  getRun(...a: Parameters<RunQueries['getRun']>): ReturnType<RunQueries['getRun']> {
    return this.queries.getRun(...a);
  }
  countStepRuns(
    ...a: Parameters<RunQueries['countStepRuns']>
  ): ReturnType<RunQueries['countStepRuns']> {
    return this.queries.countStepRuns(...a);
  }
  metricsSnapshot(
    ...a: Parameters<RunQueries['metricsSnapshot']>
  ): ReturnType<RunQueries['metricsSnapshot']> {
    return this.queries.metricsSnapshot(...a);
  }
  listRuns(...a: Parameters<RunQueries['listRuns']>): ReturnType<RunQueries['listRuns']> {
    return this.queries.listRuns(...a);
  }
  listStepRuns(
    ...a: Parameters<RunQueries['listStepRuns']>
  ): ReturnType<RunQueries['listStepRuns']> {
    return this.queries.listStepRuns(...a);
  }
  getDataclip(...a: Parameters<RunQueries['getDataclip']>): ReturnType<RunQueries['getDataclip']> {
    return this.queries.getDataclip(...a);
  }
  findEndedRuns(
    ...a: Parameters<RunQueries['findEndedRuns']>
  ): ReturnType<RunQueries['findEndedRuns']> {
    return this.queries.findEndedRuns(...a);
  }

  // RunEvents (runs/events.ts)
  listRunEvents(
    ...a: Parameters<RunEvents['listRunEvents']>
  ): ReturnType<RunEvents['listRunEvents']> {
    return this.events.listRunEvents(...a);
  }
  watchRunEvents(
    ...a: Parameters<RunEvents['watchRunEvents']>
  ): ReturnType<RunEvents['watchRunEvents']> {
    return this.events.watchRunEvents(...a);
  }
  listSettledRunEvents(
    ...a: Parameters<RunEvents['listSettledRunEvents']>
  ): ReturnType<RunEvents['listSettledRunEvents']> {
    return this.events.listSettledRunEvents(...a);
  }
  unwatchRunEvents(
    ...a: Parameters<RunEvents['unwatchRunEvents']>
  ): ReturnType<RunEvents['unwatchRunEvents']> {
    return this.events.unwatchRunEvents(...a);
  }

  // RunQueue (runs/queue.ts)
  claimSteps(...a: Parameters<RunQueue['claimSteps']>): ReturnType<RunQueue['claimSteps']> {
    return this.queue.claimSteps(...a);
  }
  completeStep(...a: Parameters<RunQueue['completeStep']>): ReturnType<RunQueue['completeStep']> {
    return this.queue.completeStep(...a);
  }
  completeSteps(
    ...a: Parameters<RunQueue['completeSteps']>
  ): ReturnType<RunQueue['completeSteps']> {
    return this.queue.completeSteps(...a);
  }
  failStep(...a: Parameters<RunQueue['failStep']>): ReturnType<RunQueue['failStep']> {
    return this.queue.failStep(...a);
  }
  releaseAttempt(
    ...a: Parameters<RunQueue['releaseAttempt']>
  ): ReturnType<RunQueue['releaseAttempt']> {
    return this.queue.releaseAttempt(...a);
  }
  heldStepRuns(...a: Parameters<RunQueue['heldStepRuns']>): ReturnType<RunQueue['heldStepRuns']> {
    return this.queue.heldStepRuns(...a);
  }
  parkStep(...a: Parameters<RunQueue['parkStep']>): ReturnType<RunQueue['parkStep']> {
    return this.queue.parkStep(...a);
  }
  extendLeases(...a: Parameters<RunQueue['extendLeases']>): ReturnType<RunQueue['extendLeases']> {
    return this.queue.extendLeases(...a);
  }
  reapExpiredLeases(
    ...a: Parameters<RunQueue['reapExpiredLeases']>
  ): ReturnType<RunQueue['reapExpiredLeases']> {
    return this.queue.reapExpiredLeases(...a);
  }
  expireAllLeases(): ReturnType<RunQueue['expireAllLeases']> {
    return this.queue.expireAllLeases();
  }
  nextAvailableAt(
    ...a: Parameters<RunQueue['nextAvailableAt']>
  ): ReturnType<RunQueue['nextAvailableAt']> {
    return this.queue.nextAvailableAt(...a);
  }

  // RunWaitpoints (runs/waitpoints.ts)
  controlState(
    ...a: Parameters<RunWaitpoints['controlState']>
  ): ReturnType<RunWaitpoints['controlState']> {
    return this.waitpoints.controlState(...a);
  }
  completeWaitpoint(
    ...a: Parameters<RunWaitpoints['completeWaitpoint']>
  ): ReturnType<RunWaitpoints['completeWaitpoint']> {
    return this.waitpoints.completeWaitpoint(...a);
  }
  getWaitpoint(
    ...a: Parameters<RunWaitpoints['getWaitpoint']>
  ): ReturnType<RunWaitpoints['getWaitpoint']> {
    return this.waitpoints.getWaitpoint(...a);
  }
  listWaitpoints(
    ...a: Parameters<RunWaitpoints['listWaitpoints']>
  ): ReturnType<RunWaitpoints['listWaitpoints']> {
    return this.waitpoints.listWaitpoints(...a);
  }
  wakeParentIfChildEnded(
    ...a: Parameters<RunWaitpoints['wakeParentIfChildEnded']>
  ): ReturnType<RunWaitpoints['wakeParentIfChildEnded']> {
    return this.waitpoints.wakeParentIfChildEnded(...a);
  }
  fireDueWaitpoints(
    ...a: Parameters<RunWaitpoints['fireDueWaitpoints']>
  ): ReturnType<RunWaitpoints['fireDueWaitpoints']> {
    return this.waitpoints.fireDueWaitpoints(...a);
  }
  nextWaitpointDue(
    ...a: Parameters<RunWaitpoints['nextWaitpointDue']>
  ): ReturnType<RunWaitpoints['nextWaitpointDue']> {
    return this.waitpoints.nextWaitpointDue(...a);
  }

  // RunLifecycle (runs/run-lifecycle.ts)
  cancelRun(...a: Parameters<RunLifecycle['cancelRun']>): ReturnType<RunLifecycle['cancelRun']> {
    return this.lifecycle.cancelRun(...a);
  }
  resumeRun(...a: Parameters<RunLifecycle['resumeRun']>): ReturnType<RunLifecycle['resumeRun']> {
    return this.lifecycle.resumeRun(...a);
  }
}
