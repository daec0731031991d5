/**
 * Engine-level reads of runs for the server: the runs list, counts by status, one run with its
 * step summary, its step runs (lineage-aware), its state and its waitpoints. Routes read through
 * these, not the run store, so what a read means (which location, the environment check, "not
 * found") is decided here once.
 *
 * Failure semantics: each read returns `undefined` for a run that does not exist in the
 * environment (a malformed id included); a database error rejects as the store's error.
 */
import { RUN_STATUSES, type RunStatus } from '../store/rows.js';
import type { ListRunsQuery, RunStore, WaitpointRecord } from '../store/run-store.js';
import {
  countRunsByStatus,
  listStepRunsWithLineage,
  readRunState,
  type ListedStepRun,
} from '../store/runs/run-reads.js';

/** A keyset page of runs, across every location. */
export function listRuns(runs: RunStore, q: ListRunsQuery): ReturnType<RunStore['listRuns']> {
  return runs.listRuns(q);
}

/** Runs by status in an environment (every status present, 0 when none), across locations. */
export async function countRuns(
  runs: RunStore,
  q: Parameters<typeof countRunsByStatus>[2],
): Promise<Record<RunStatus, number>> {
  const parts = await Promise.all(
    [...runs.locations.values()].map((loc) => countRunsByStatus(loc.db, loc.schema, q)),
  );
  const counts = Object.fromEntries(RUN_STATUSES.map((s) => [s, 0])) as Record<RunStatus, number>;
  for (const r of parts.flat()) counts[r.status] = (counts[r.status] ?? 0) + r.n;
  return counts;
}

/** A run and the count of its step runs by status: two reads in parallel on its location. */
export async function getRunDetail(runs: RunStore, environmentId: string, runId: string) {
  // countStepRuns checks the run's environment itself.
  const [run, counts] = await Promise.all([
    runs.getRun(environmentId, runId),
    runs.countStepRuns(environmentId, runId),
  ]);
  return run && counts ? { run, counts } : undefined;
}

/** A run's step runs, with the rows a rerun reuses from its source. */
export async function listStepRuns(
  runs: RunStore,
  environmentId: string,
  runId: string,
): Promise<ListedStepRun[] | undefined> {
  const loc = runs.locationOf(runId);
  return loc && (await listStepRunsWithLineage(loc.db, loc.schema, environmentId, runId));
}

/** A run's state and final state. */
export async function getRunState(runs: RunStore, environmentId: string, runId: string) {
  const loc = runs.locationOf(runId);
  return loc && (await readRunState(loc.db, loc.schema, environmentId, runId));
}

/** A run's waitpoints; `undefined` when the run does not exist (not "no waitpoints"). */
export async function listRunWaitpoints(
  runs: RunStore,
  environmentId: string,
  runId: string,
): Promise<WaitpointRecord[] | undefined> {
  const [run, waitpoints] = await Promise.all([
    runs.getRun(environmentId, runId),
    runs.listWaitpoints(environmentId, runId),
  ]);
  return run ? waitpoints : undefined;
}

/** One run; `undefined` when it does not exist in the environment. */
export function getRun(runs: RunStore, environmentId: string, runId: string) {
  return runs.getRun(environmentId, runId);
}

/** One dataclip by id (one indexed read on the location its id names). */
export function getDataclip(runs: RunStore, environmentId: string, dataclipId: string) {
  return runs.getDataclip(environmentId, dataclipId);
}

/** The queue and run gauges `GET /metrics` exports, read across every location. */
export function metricsSnapshot(runs: RunStore) {
  return runs.metricsSnapshot();
}
