/**
 * What the run page derives from step runs: a status per graph node (iterations and branches
 * counted), the timeline's order, and the run state folded from committed state patches (time
 * travel: the state right after a given step run committed).
 */
import { reusedSource, type StepRun, type StatePatchView } from '../api';
import type { NodeOverlay } from '../graph/FlowGraph';

const PRIORITY = [
  'failed',
  'running',
  'waiting',
  'ready',
  'pending',
  'canceled',
  'pruned',
  'reused',
  'succeeded',
];

export function isReused(s: StepRun): boolean {
  return reusedSource(s) !== null;
}

export function displayStatus(s: StepRun): string {
  return isReused(s) && s.status === 'succeeded' ? 'reused' : s.status;
}

/** Graph node id → overlay: one step run gives its status; several (loop iterations) give counts. */
export function statusOverlays(steps: readonly StepRun[]): Record<string, NodeOverlay> {
  const byStep = new Map<string, StepRun[]>();
  for (const s of steps) {
    const list = byStep.get(s.stepId);
    if (list) list.push(s);
    else byStep.set(s.stepId, [s]);
  }
  const out: Record<string, NodeOverlay> = {};
  for (const [stepId, list] of byStep) {
    const statuses = list.map(displayStatus);
    const status = PRIORITY.find((p) => statuses.includes(p)) ?? statuses[0]!;
    const overlay: NodeOverlay = { status };
    if (list.length > 1 || list[0]!.stepKey !== stepId) {
      overlay.counts = {
        total: list.length,
        succeeded: statuses.filter((s) => s === 'succeeded' || s === 'reused').length,
        failed: statuses.filter((s) => s === 'failed').length,
        running: statuses.filter((s) => s === 'running').length,
      };
      // All iterations finished: the node reads as done even if some were reused.
      if (overlay.counts.succeeded === list.length)
        overlay.status = statuses.every((s) => s === 'reused') ? 'reused' : 'succeeded';
    }
    out[stepId] = overlay;
  }
  return out;
}

function applyPatch(state: Record<string, unknown>, patch: StatePatchView): void {
  const p = patch as Record<string, unknown>;
  const keys = Object.keys(p);
  const structured = keys.length > 0 && keys.every((k) => k === 'set' || k === 'delete');
  if (structured) {
    const set = p.set as Record<string, unknown> | null | undefined;
    const del = p.delete as string[] | null | undefined;
    if (set) Object.assign(state, set);
    for (const k of del ?? []) delete state[k];
  } else {
    Object.assign(state, p);
  }
}

/** Step runs that committed a state patch, in commit order (finish time, then creation). */
export function committedPatches(steps: readonly StepRun[]): StepRun[] {
  return steps
    .filter((s) => s.statePatch && s.finishedAt)
    .sort(
      (a, b) =>
        Date.parse(a.finishedAt!) - Date.parse(b.finishedAt!) ||
        a.createdAt.localeCompare(b.createdAt),
    );
}

/** The run state right after `upTo` committed (its patch included); undefined when it had none. */
export function stateAfter(
  steps: readonly StepRun[],
  upTo: StepRun,
): { state: Record<string, unknown>; folded: number } {
  const state: Record<string, unknown> = {};
  let folded = 0;
  const cut = upTo.finishedAt ? Date.parse(upTo.finishedAt) : Infinity;
  for (const s of committedPatches(steps)) {
    if (Date.parse(s.finishedAt!) > cut) break;
    applyPatch(state, s.statePatch!);
    folded++;
    if (s.id === upTo.id) break;
  }
  return { state, folded };
}

export function supportsStatePatches(steps: readonly StepRun[]): boolean {
  return steps.some((s) => 'statePatch' in s);
}

/** Timeline order: by start; step runs that have not started (pending, reused) go last. */
export function timelineOrder(steps: readonly StepRun[]): StepRun[] {
  const key = (s: StepRun) => (s.startedAt ? Date.parse(s.startedAt) : Infinity);
  return [...steps].sort((a, b) => key(a) - key(b) || a.createdAt.localeCompare(b.createdAt));
}
