/**
 * One LISTEN connection per PostgreSQL executor, shared by every channel (worker wake-ups and
 * cancels, run waiters, live events), that comes back after any outage.
 *
 * Failure semantics: while the connection is down, notifications are lost — PostgreSQL does not
 * queue them for a listener that is not connected. So the listener reconnects with capped,
 * jittered exponential backoff for as long as the executor is open (never giving up: an outage of
 * an hour must not leave a worker on polling for the rest of its life), re-LISTENs every channel
 * on the new connection, and then calls each subscriber's `onReconnect`, which must catch up by
 * polling for what it may have missed (the worker claims and renews its leases at once, which
 * aborts attempts of runs canceled during the outage). State changes are logged once each
 * (lost, restored), never once per attempt.
 */
import pg from 'pg';
import type { ExecutorLogger, ListenerHealth, ListenOptions } from './executor.js';

/** First retry after this; doubled per failure up to the cap; each delay jittered to 50–100 %. */
export const LISTEN_RETRY_BASE_MS = 100;
export const LISTEN_RETRY_CAP_MS = 5_000;
/**
 * A connection cut without a reset (a partition, a dead host) looks alive until TCP gives up,
 * minutes later: a ping this often, that must answer within the timeout, notices it instead.
 */
export const LISTEN_PING_EVERY_MS = 15_000;
export const LISTEN_PING_TIMEOUT_MS = 10_000;

interface Subscription {
  onNotify: (payload: string) => void;
  options: ListenOptions;
}

export class PgListener {
  private readonly channels = new Map<string, Set<Subscription>>();
  private client: pg.Client | undefined;
  private listened = new Set<string>();
  private state: ListenerHealth['state'] = 'idle';
  private since = Date.now();
  private reconnects = 0;
  private failures = 0;
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** A reconnection attempt is running (its timer already fired). */
  private reconnecting = false;
  private pingTimer: NodeJS.Timeout | undefined;
  private connecting: Promise<void> | undefined;
  private closed = false;
  /** The barrier round trip in flight, and the one queued behind it (barrier()). */
  private barrierInFlight: Promise<boolean> | undefined;
  private barrierNext: Promise<boolean> | undefined;
  /** LISTEN/UNLISTEN statements in order, one at a time, on the current connection. */
  private sync: Promise<void> = Promise.resolve();

  constructor(
    private readonly connectionString: string,
    private readonly applicationName: string,
    private readonly logger: ExecutorLogger | undefined,
    private readonly ping: { everyMs: number; timeoutMs: number } = {
      everyMs: LISTEN_PING_EVERY_MS,
      timeoutMs: LISTEN_PING_TIMEOUT_MS,
    },
  ) {}

  health(): ListenerHealth {
    return {
      state: this.state,
      since: new Date(this.since),
      reconnects: this.reconnects,
      failedAttempts: this.failures,
      channels: [...this.channels.keys()],
      ...(this.lastError !== undefined && this.state === 'down'
        ? { lastError: this.lastError }
        : {}),
    };
  }

  /**
   * Subscribe to a channel. Resolves once the channel is LISTENed on the current connection, or,
   * when the database cannot be reached, after the first attempt failed (it is then LISTENed on
   * the connection the backoff eventually makes; `onReconnect` tells the subscriber).
   */
  async subscribe(
    channel: string,
    onNotify: (payload: string) => void,
    options: ListenOptions = {},
  ): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('the executor is closed');
    const sub: Subscription = { onNotify, options };
    let set = this.channels.get(channel);
    if (!set) {
      set = new Set();
      this.channels.set(channel, set);
    }
    set.add(sub);
    if (this.state === 'idle') {
      this.connecting ??= this.firstConnect();
    } else if (this.state === 'down') {
      this.scheduleReconnect(); // no-op when a retry is already scheduled or running
    }
    if (this.connecting) await this.connecting;
    await this.syncChannels();
    const subs = set;
    return async () => {
      subs.delete(sub);
      if (subs.size === 0 && this.channels.get(channel) === subs) this.channels.delete(channel);
      if (this.channels.size === 0) await this.shutdown('idle');
      else await this.syncChannels();
    };
  }

  /**
   * Resolve true once a `select 1` sent on the LISTEN connection after this call has answered:
   * PostgreSQL delivers every notification queued before that query (a writer's NOTIFY is queued
   * and the listeners signalled before the writer's COMMIT returns) ahead of the query's answer,
   * and the driver runs the notification handlers first. So a change committed anywhere before
   * this call has reached the subscribers when it resolves (ControlStore.syncBeforeServe). False
   * when the connection is not up (or does not answer within 2 s): the caller must not rely on
   * notifications then. Calls made while a round trip is in flight share the next one (one query
   * in flight at a time, whatever the request rate).
   */
  barrier(): Promise<boolean> {
    if (!this.barrierInFlight) {
      this.barrierInFlight = this.barrierRoundTrip().finally(() => {
        this.barrierInFlight = undefined;
      });
      return this.barrierInFlight;
    }
    // the round trip in flight may have started before this call: wait for the one after it
    this.barrierNext ??= this.barrierInFlight.then(() => {
      this.barrierNext = undefined;
      return this.barrier();
    });
    return this.barrierNext;
  }

  private async barrierRoundTrip(): Promise<boolean> {
    const c = this.client;
    if (!c || this.state !== 'connected') return false;
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        c.query('select 1'),
        new Promise((_, reject) => {
          timeout = setTimeout(() => reject(new Error('no answer within 2000 ms')), 2_000);
        }),
      ]);
      return c === this.client;
    } catch {
      return false;
    } finally {
      clearTimeout(timeout);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
    await this.shutdown('closed');
  }

  private async shutdown(state: 'idle' | 'closed'): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    clearInterval(this.pingTimer);
    const c = this.client;
    this.client = undefined;
    this.listened = new Set();
    this.state = state;
    this.since = Date.now();
    this.failures = 0;
    if (c) await c.end().catch(() => {});
  }

  private async firstConnect(): Promise<void> {
    this.state = 'connecting';
    try {
      await this.connectOnce();
      this.state = 'connected';
      this.since = Date.now();
    } catch (error) {
      // Everyone unsubscribed (or the executor closed) while it connected: nothing is down.
      if (this.closed || this.channels.size === 0) {
        if (!this.closed) this.state = 'idle';
      } else {
        this.wentDown(error, 'the LISTEN connection could not be opened');
      }
    } finally {
      this.connecting = undefined;
    }
  }

  private async connectOnce(): Promise<void> {
    const c = new pg.Client({
      connectionString: this.connectionString,
      application_name: this.applicationName,
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
    });
    c.on('notification', (msg) => {
      for (const sub of this.channels.get(msg.channel) ?? []) sub.onNotify(msg.payload ?? '');
    });
    c.on('error', (error) => this.lost(c, error));
    c.on('end', () => this.lost(c, new Error('the LISTEN connection ended')));
    try {
      await c.connect();
      if (this.closed || this.channels.size === 0) throw new Error('no longer needed');
      this.client = c;
      this.listened = new Set();
      for (const channel of [...this.channels.keys()]) {
        await c.query(`listen ${quoteChannel(channel)}`);
        this.listened.add(channel);
      }
      this.startPing(c);
    } catch (error) {
      if (this.client === c) this.client = undefined;
      await c.end().catch(() => {});
      throw error;
    }
  }

  private startPing(c: pg.Client): void {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (c !== this.client) {
        clearInterval(this.pingTimer);
        return;
      }
      let timeout: NodeJS.Timeout | undefined;
      void Promise.race([
        c.query('select 1'),
        new Promise((_, reject) => {
          timeout = setTimeout(
            () => reject(new Error(`no answer to a ping within ${this.ping.timeoutMs} ms`)),
            this.ping.timeoutMs,
          );
        }),
      ])
        .catch((error: unknown) => this.lost(c, error))
        .finally(() => clearTimeout(timeout));
    }, this.ping.everyMs);
    this.pingTimer.unref();
  }

  /** LISTEN channels added, UNLISTEN channels dropped, on the current connection. */
  private syncChannels(): Promise<void> {
    this.sync = this.sync.then(async () => {
      const c = this.client;
      if (!c || this.state !== 'connected') return; // the next connection LISTENs all of them
      try {
        for (const channel of this.channels.keys()) {
          if (!this.listened.has(channel)) {
            await c.query(`listen ${quoteChannel(channel)}`);
            this.listened.add(channel);
          }
        }
        for (const channel of [...this.listened]) {
          if (!this.channels.has(channel)) {
            await c.query(`unlisten ${quoteChannel(channel)}`);
            this.listened.delete(channel);
          }
        }
      } catch (error) {
        this.lost(c, error);
      }
    });
    return this.sync;
  }

  /** The current connection failed (error or end event, or a failed LISTEN). */
  private lost(c: pg.Client, error: unknown): void {
    if (c !== this.client) return; // an old connection, or one still being opened
    this.client = undefined;
    clearInterval(this.pingTimer);
    this.listened = new Set();
    c.end().catch(() => {});
    if (this.closed || this.state === 'idle') return;
    this.wentDown(error, 'the LISTEN connection was lost');
  }

  private wentDown(error: unknown, what: string): void {
    this.lastError = error instanceof Error ? error.message : String(error);
    if (this.state !== 'down') {
      this.state = 'down';
      this.since = Date.now();
      this.failures = 0;
      this.logger?.warn(
        { err: this.lastError, channels: [...this.channels.keys()] },
        `${what}; wake-ups fall back to polling until it is back (reconnecting with backoff)`,
      );
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.timer || this.reconnecting || this.closed || this.channels.size === 0) return;
    const exp = Math.min(
      LISTEN_RETRY_CAP_MS,
      LISTEN_RETRY_BASE_MS * 2 ** Math.min(this.failures, 16),
    );
    const delay = Math.round(exp * (0.5 + Math.random() * 0.5));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconnect();
    }, delay);
    this.timer.unref();
  }

  private async reconnect(): Promise<void> {
    if (this.closed || this.state !== 'down' || this.channels.size === 0) return;
    this.reconnecting = true;
    try {
      await this.connectOnce();
    } catch (error) {
      this.reconnecting = false;
      this.failures++;
      this.lastError = error instanceof Error ? error.message : String(error);
      if (this.state === 'down') this.scheduleReconnect();
      return;
    }
    this.reconnecting = false;
    if (this.state !== 'down') return; // shut down meanwhile (connectOnce saw no channels)
    const downMs = Date.now() - this.since;
    this.state = 'connected';
    this.since = Date.now();
    this.reconnects++;
    this.logger?.info(
      { downMs, attempts: this.failures + 1, channels: [...this.listened] },
      'the LISTEN connection is back; catching up on what was missed',
    );
    this.failures = 0;
    for (const set of this.channels.values()) {
      for (const sub of set) {
        try {
          sub.options.onReconnect?.();
        } catch (error) {
          this.logger?.warn({ err: String(error) }, 'a LISTEN subscriber failed to catch up');
        }
      }
    }
  }
}

function quoteChannel(channel: string): string {
  return `"${channel.replaceAll('"', '""')}"`;
}
