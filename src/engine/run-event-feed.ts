/**
 * A run's events as a live feed: the engine-level query the server's event stream reads through
 * (GET /api/v1/runs/{id}/events), so the route touches neither the run store nor the listener.
 *
 * The feed is a cursor over `run_events` (RunStore.listSettledRunEvents, which holds an event
 * back until every transaction in flight at the read has ended, so the cursor never passes an id
 * that could still appear) plus a subscription to the run on the process's RunObserver. The
 * subscription is taken before the first read, so an event committed after the open always wakes
 * the feed.
 *
 * Failure semantics: `openRunEventFeed` closes its subscription before it returns `undefined`
 * (unknown run) or rejects (database error); otherwise the caller owns the subscription and must
 * close it. `read` rejects on a database error; the cursor is the caller's, so a retry with the
 * last delivered id loses and repeats nothing.
 */
import type { RunEventRecord } from '../store/rows.js';
import { TERMINAL_RUN_STATUSES } from '../store/rows.js';
import type { RunStore } from '../store/run-store.js';
import { runObserverFor, type RunSubscription } from './run-observer.js';

export interface RunEventFeed {
  /** The first page of events after the opening cursor (maybe empty). */
  first: RunEventRecord[];
  /** The run has ended and nothing after the cursor is left: there is nothing to stream. */
  finished: boolean;
  /** The next page of events after `afterId`. */
  read(afterId: number): Promise<RunEventRecord[]>;
  /** Wake-ups for the run (event commits, run ended). */
  subscription: RunSubscription;
}

/** Open a feed of a run's events after `after`; `undefined` when the run does not exist. */
export async function openRunEventFeed(
  runs: RunStore,
  environmentId: string,
  runId: string,
  after: number,
  pageSize: number,
): Promise<RunEventFeed | undefined> {
  const subscription = await runObserverFor(runs).subscribe(runId);
  try {
    const run = await runs.getRun(environmentId, runId);
    if (!run) {
      subscription.close();
      return undefined;
    }
    const read = async (afterId: number) =>
      (await runs.listSettledRunEvents(environmentId, runId, afterId, pageSize)) ?? [];
    const first = await read(after);
    return {
      first,
      finished: first.length === 0 && TERMINAL_RUN_STATUSES.includes(run.status),
      read,
      subscription,
    };
  } catch (error) {
    subscription.close();
    throw error;
  }
}
