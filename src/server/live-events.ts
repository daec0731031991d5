/**
 * Wake-ups for live run events. One LISTEN on `weft_events` per database (the trigger of
 * location migration 0002 sends the run id when events of a watched run commit), fanned out in
 * memory to every stream of that run. Runs with at least one stream here are registered as
 * watched (RunStore.watchRunEvents), renewed every `ttl / 3`, unregistered with their last
 * stream; only watched runs pay for NOTIFY on their commits. A wake-up carries no event: the stream re-reads `run_events`
 * after the last id it delivered, so a notification lost with a dropped LISTEN connection, or two
 * folded into one, loses nothing — and each stream also re-reads every `pollIntervalMs` anyway.
 */
import { randomBytes } from 'node:crypto';
import type { Executor } from '../store/executor.js';
import type { RunStore } from '../store/run-store.js';

export const LIVE_EVENTS_CHANNEL = 'weft_events';
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

export class LiveEvents {
  private readonly subscribers = new Map<string, Set<Subscriber>>();
  private listening: Promise<void> | undefined;
  private unlisten: Array<() => Promise<void>> = [];
  private renewTimer: NodeJS.Timeout | undefined;
  /** This process's name in run_event_watchers. */
  readonly watcherId = `srv_${randomBytes(8).toString('hex')}`;

  constructor(private readonly runs: RunStore) {}

  /**
   * Subscribe to a run. Resolves once the LISTEN is in place, so an event committed after this
   * resolves always wakes the subscriber. If LISTEN cannot be set up (database down) the
   * subscription still works by polling.
   */
  async subscribe(runId: string): Promise<RunSubscription> {
    const subscriber: Subscriber = { pending: false, wake: undefined };
    const set = this.subscribers.get(runId) ?? new Set<Subscriber>();
    this.subscribers.set(runId, set);
    set.add(subscriber);
    await this.listen().catch(() => {
      // Polling covers it; the next subscription tries again.
      this.listening = undefined;
    });
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

  /** Subscribers currently registered (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.subscribers.values()) n += set.size;
    return n;
  }

  private notify(runId: string): void {
    const set = this.subscribers.get(runId);
    if (!set) return;
    for (const s of set) {
      s.pending = true;
      s.wake?.();
    }
  }

  /** LISTEN once per database: locations in the same run-ops database share one connection. */
  private listen(): Promise<void> {
    this.listening ??= (async () => {
      const databases = new Set<Executor>([...this.runs.locations.values()].map((l) => l.db));
      for (const db of databases)
        this.unlisten.push(await db.listen(LIVE_EVENTS_CHANNEL, (runId) => this.notify(runId)));
    })();
    return this.listening;
  }

  async close(): Promise<void> {
    for (const set of this.subscribers.values()) for (const s of set) s.wake?.();
    this.subscribers.clear();
    clearInterval(this.renewTimer);
    this.renewTimer = undefined;
    const unlisten = this.unlisten;
    this.unlisten = [];
    this.listening = undefined;
    await Promise.all(unlisten.map((u) => u()));
  }
}

const byStore = new WeakMap<RunStore, LiveEvents>();

/** The process's hub for a run store: every app over the same stores shares one LISTEN. */
export function liveEventsFor(runs: RunStore): LiveEvents {
  let hub = byStore.get(runs);
  if (!hub) {
    hub = new LiveEvents(runs);
    byStore.set(runs, hub);
  }
  return hub;
}
