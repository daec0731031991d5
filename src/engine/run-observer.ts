/**
 * The one listener hub for runs: waiting for a run to end (`Engine.waitForRun`) and live event
 * streams (`GET /v1/runs/{id}/events`) both subscribe here. Per database it LISTENs on two named
 * channels (src/store/channels.ts):
 * - `runEnded`, the one "run ended" signal, sent by the store right after the ending transaction
 *   committed. It wakes the run's waiters *and* its streams, so a stream learns a run ended from
 *   the same notification as a waiter does;
 * - `events`, sent by the `notify_run_events` trigger when events of a *watched* run commit. Runs
 *   with at least one stream here are registered as watched (RunStore.watchRunEvents), renewed
 *   every `ttl / 3` and unregistered with their last stream, so only watched runs pay for it.
 *
 * Failure semantics: a wake-up carries no data. A waiter re-reads the run and a stream re-reads
 * `run_events` after the last id it delivered, so a notification lost with a dropped LISTEN
 * connection, or two folded into one, loses nothing. Waiters are also covered by one poll for all
 * waited runs together (one query per location per `pollMs`), streams by their own re-read every
 * poll interval. If LISTEN cannot be set up (database down) both work by polling alone.
 */
import { randomBytes } from 'node:crypto';
import { WeftError } from '../core/errors.js';
import { CHANNELS } from '../store/channels.js';
import type { Executor } from '../store/executor.js';
import type { RunRecord } from '../store/rows.js';
import { TERMINAL_RUN_STATUSES } from '../store/rows.js';
import type { RunStore } from '../store/run-store.js';

/** How long a watch registration lives without renewal (a dead server's lapse after this). */
const WATCH_TTL_MS = 30_000;

/** One stream's interest in one run. */
export interface RunSubscription {
  /**
   * Resolves `true` on a wake-up for the run, `false` after `timeoutMs` or once `signal` aborts.
   * A wake-up that came since the previous wait resolves at once, so a notification that lands
   * between a read and the next wait is never slept through.
   */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  close(): void;
}

interface Subscriber {
  pending: boolean;
  wake: (() => void) | undefined;
}

interface Waiter {
  wake: () => void;
}

export class RunObserver {
  /** Event streams per run. */
  private readonly subscribers = new Map<string, Set<Subscriber>>();
  /** Run waits per run. */
  private readonly waiters = new Map<string, Set<Waiter>>();
  private listening: Promise<void> | undefined;
  private unlisten: Array<() => Promise<void>> = [];
  private renewTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  /** This process's name in run_event_watchers. */
  readonly watcherId = `srv_${randomBytes(8).toString('hex')}`;

  constructor(
    private readonly runs: RunStore,
    private readonly pollMs = 1000,
  ) {}

  /**
   * Subscribe to a run's events. Resolves once the LISTEN is in place, so an event committed
   * after this resolves always wakes the subscriber (or it works by polling, see above).
   */
  async subscribe(runId: string): Promise<RunSubscription> {
    const subscriber: Subscriber = { pending: false, wake: undefined };
    const set = this.subscribers.get(runId) ?? new Set<Subscriber>();
    this.subscribers.set(runId, set);
    set.add(subscriber);
    await this.listen();
    // Registered after LISTEN is in place: from then on, each event commit of the run notifies.
    // A failure (database away) leaves the stream on polling; the renewal retries.
    await this.runs.watchRunEvents([runId], this.watcherId, WATCH_TTL_MS).catch(() => {});
    this.renewTimer ??= setInterval(() => {
      const ids = [...this.subscribers.keys()];
      if (ids.length > 0)
        void this.runs.watchRunEvents(ids, this.watcherId, WATCH_TTL_MS).catch(() => {});
    }, WATCH_TTL_MS / 3).unref();
    return {
      wait: (timeoutMs, signal) =>
        new Promise<boolean>((resolve) => {
          if (subscriber.pending || signal?.aborted) {
            const woke = subscriber.pending;
            subscriber.pending = false;
            resolve(woke);
            return;
          }
          const done = (woke: boolean) => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            subscriber.wake = undefined;
            subscriber.pending = false;
            resolve(woke);
          };
          const onAbort = () => done(false);
          const timer = setTimeout(() => done(false), timeoutMs);
          signal?.addEventListener('abort', onAbort, { once: true });
          subscriber.wake = () => done(true);
        }),
      close: () => {
        set.delete(subscriber);
        if (set.size === 0 && this.subscribers.get(runId) === set) {
          this.subscribers.delete(runId);
          void this.runs.unwatchRunEvents(runId, this.watcherId).catch(() => {});
        }
        subscriber.wake?.();
      },
    };
  }

  /** Event-stream subscribers currently registered (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.subscribers.values()) n += set.size;
    return n;
  }

  /**
   * Resolve with the run once it has ended (succeeded, failed or canceled) or paused. Rejects
   * `not_found` for an unknown run and `internal` after `timeoutMs` (default 60 s).
   */
  async waitForRun(
    environmentId: string,
    runId: string,
    options: { timeoutMs?: number } = {},
  ): Promise<RunRecord> {
    await this.listen();
    const timeoutMs = options.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.runs.getRun(environmentId, runId);
      if (!run)
        throw new WeftError(
          'not_found',
          `run ${runId} does not exist in environment ${environmentId}`,
        );
      if (TERMINAL_RUN_STATUSES.includes(run.status) || run.status === 'paused') return run;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new WeftError(
          'internal',
          `run ${runId} did not end within ${timeoutMs} ms (status ${run.status})`,
        );
      }
      await new Promise<void>((resolve) => {
        const set = this.waiters.get(runId) ?? new Set<Waiter>();
        this.waiters.set(runId, set);
        const waiter: Waiter = {
          wake: () => {
            clearTimeout(timer);
            set.delete(waiter);
            if (set.size === 0) this.waiters.delete(runId);
            resolve();
          },
        };
        const timer = setTimeout(waiter.wake, left);
        set.add(waiter);
        this.schedulePoll();
      });
    }
  }

  /** A run ended or paused: wake its waiters and its streams. */
  private runEnded(runId: string): void {
    const waiters = this.waiters.get(runId);
    if (waiters) for (const w of waiters) w.wake();
    this.eventsCommitted(runId);
  }

  /** Events of a run committed: wake its streams. */
  private eventsCommitted(runId: string): void {
    const set = this.subscribers.get(runId);
    if (!set) return;
    for (const s of set) {
      s.pending = true;
      s.wake?.();
    }
  }

  private schedulePoll(): void {
    if (this.pollTimer || this.waiters.size === 0) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      void this.pollEnded()
        .catch(() => {})
        .finally(() => this.schedulePoll());
    }, this.pollMs);
  }

  private async pollEnded(): Promise<void> {
    const ended = await this.runs.findEndedRuns([...this.waiters.keys()]);
    for (const id of ended) {
      const waiters = this.waiters.get(id);
      if (waiters) for (const w of waiters) w.wake();
    }
  }

  /**
   * LISTEN once per database (locations in the same run-ops database share one connection).
   * Never rejects: a failure leaves everything on polling, and the next caller tries again.
   */
  private listen(): Promise<void> {
    this.listening ??= (async () => {
      const databases = new Set<Executor>([...this.runs.locations.values()].map((l) => l.db));
      for (const db of databases) {
        this.unlisten.push(await db.listen(CHANNELS.runEnded, (runId) => this.runEnded(runId)));
        this.unlisten.push(
          await db.listen(CHANNELS.events, (runId) => this.eventsCommitted(runId)),
        );
      }
    })().catch(() => {
      this.listening = undefined;
    });
    return this.listening;
  }

  /** Stop listening; open streams are woken (and fall back to polling), waiters time out or poll. */
  async close(): Promise<void> {
    for (const set of this.subscribers.values()) for (const s of set) s.wake?.();
    this.subscribers.clear();
    clearInterval(this.renewTimer);
    this.renewTimer = undefined;
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    const unlisten = this.unlisten;
    this.unlisten = [];
    this.listening = undefined;
    await Promise.all(unlisten.map((u) => u()));
  }
}

const byStore = new WeakMap<RunStore, RunObserver>();

/**
 * The process's hub for a run store: every server app over the same stores shares one (and so one
 * set of watch registrations). An Engine keeps its own, closed with it.
 */
export function runObserverFor(runs: RunStore): RunObserver {
  let hub = byStore.get(runs);
  if (!hub) {
    hub = new RunObserver(runs);
    byStore.set(runs, hub);
  }
  return hub;
}
