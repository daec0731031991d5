/**
 * `weft replicate`: streams the run tables (runs, step_runs, attempts) of every location of one
 * run-ops database into ClickHouse through PostgreSQL logical replication (`pgoutput`, read with
 * `pg-logical-replication`). One publication (`<prefix>_analytics`) and one slot
 * (`<prefix>_analytics_<database>`) per run-ops database; every location schema's tables are in
 * the publication (`weft migrate` adds a location's tables when it creates it, coPublishIfMirrored, and sets
 * REPLICA IDENTITY FULL so a delete carries the whole row: its environment and sort key).
 *
 * Failure semantics:
 * - A WAL position is acknowledged to PostgreSQL only after ClickHouse accepted every row up to
 *   that transaction's commit (batches end on a commit boundary). Crash anywhere: the slot still
 *   holds the unacknowledged changes; the restart receives them again, and ClickHouse collapses
 *   the repeats (ReplacingMergeTree on version = the change's LSN), so nothing is lost or doubled.
 * - ClickHouse or PostgreSQL down: the stream is dropped, the buffer discarded, and the stream is
 *   reopened from the slot with backoff (1 s doubling to 30 s) until both answer.
 * - A slot that is gone (dropped, or invalidated by max_slot_wal_keep_size) after ClickHouse
 *   recorded progress, a table or schema it does not know, or a TRUNCATE: `replication_broken`,
 *   and the process stops (silent loss is worse): the message says how to rebuild.
 * - A new slot (first start, or after `--rebuild`): the slot is created first, then each table is
 *   copied with version 0; every change after the slot's creation has a larger version, so the
 *   stream corrects whatever the copy read mid-change. Progress is recorded only after the copy,
 *   so a crash during the copy copies again.
 *
 * Where the parts live: setup before the stream (wal_level, publication, slot name, first copy,
 * `--rebuild`, progress rows) is replication-setup.ts; the buffer that turns `pgoutput` messages
 * into ClickHouse rows on commit boundaries is change-batcher.ts; the optional client library is
 * pgoutput-client.ts. This file is the stream and its acknowledgement rule.
 */
import { WeftError } from '../core/errors.js';
import type { MetricsRegistry } from '../engine/metrics.js';
import type { Executor } from '../store/executor.js';
import { openExecutor } from '../store/stores.js';
import { ChangeBatcher, insertChanges } from './change-batcher.js';
import type { Clickhouse } from './clickhouse.js';
import { bigIntToLsn, lsnToBigInt } from './mirror-tables.js';
import { loadReplicationClient, type PgoutputMessage } from './pgoutput-client.js';
import {
  checkWalLevel,
  copyLocations,
  dropMirror,
  ensurePublication,
  identifySource,
  publicationName,
  readProgress,
  replicationBroken,
  slotName,
  writeProgress,
  type SourceIdentity,
} from './replication-setup.js';

// What other modules have always imported from here.
export {
  checkWalLevel,
  coPublishIfMirrored,
  ensurePublication,
  publicationName,
  slotName,
  storedTableName,
} from './replication-setup.js';

export interface ReplicationSource {
  /** PostgreSQL URL of one run-ops database (logical replication needs a URL, not a pool). */
  url: string;
  /** Its locations: tag and schema of the run tables. */
  locations: Array<{ tag: string; schema: string }>;
}

export interface ReplicatorLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ReplicatorOptions {
  clickhouse: Clickhouse;
  source: ReplicationSource;
  /** Schema prefix (`weft`): names the publication and the slot. */
  prefix?: string;
  /** Flush when this many rows are buffered (at the next commit). Default 5,000. */
  batchRows?: number;
  /** Flush buffered rows at least this often. Default 250 ms. */
  flushIntervalMs?: number;
  logger?: ReplicatorLogger;
  registry?: MetricsRegistry;
  /** Drop the slot and the mirrored rows of these locations, then copy again. */
  rebuild?: boolean;
}

const quietLogger: ReplicatorLogger = { info() {}, warn() {}, error() {} };

/** What a replicator reports (metrics, `weft replicate status`). */
export interface ReplicatorState {
  source: string;
  slot: string;
  /** Last commit LSN ClickHouse holds. */
  flushedLsn: string | null;
  /** Commit time of that transaction. */
  flushedCommitAt: Date | null;
  /** WAL bytes between the server's current position and the slot's confirmed position. */
  lagBytes: number | null;
  /** Seconds since the oldest transaction received but not yet in ClickHouse committed (0 when caught up). */
  lagSeconds: number;
  rowsWritten: number;
  batches: number;
  restarts: number;
  lastError: string | null;
}

export class Replicator {
  private readonly prefix: string;
  private readonly logger: ReplicatorLogger;
  private readonly flushIntervalMs: number;
  private db: Executor | undefined;
  private identity: SourceIdentity | undefined;
  private slot = '';
  private stopped = false;
  private service:
    { stop(): Promise<unknown>; acknowledge(lsn: string): Promise<boolean> } | undefined;
  private wake: (() => void) | undefined;
  private readonly batcher: ChangeBatcher;
  private flushing: Promise<void> = Promise.resolve();
  private failure: unknown;
  private received = 0;
  private handled = 0;
  private readonly state: ReplicatorState;
  private lagTimer: NodeJS.Timeout | undefined;
  private untrack: Array<() => void> = [];

  constructor(private readonly options: ReplicatorOptions) {
    this.prefix = options.prefix ?? 'weft';
    this.logger = options.logger ?? quietLogger;
    this.flushIntervalMs = options.flushIntervalMs ?? 250;
    this.batcher = new ChangeBatcher({
      publication: publicationName(this.prefix),
      locations: options.source.locations,
      batchRows: options.batchRows ?? 5_000,
    });
    this.state = {
      source: redact(options.source.url),
      slot: '',
      flushedLsn: null,
      flushedCommitAt: null,
      lagBytes: null,
      lagSeconds: 0,
      rowsWritten: 0,
      batches: 0,
      restarts: 0,
      lastError: null,
    };
  }

  get status(): ReplicatorState {
    const oldest = this.batcher.oldestPendingMs;
    return { ...this.state, lagSeconds: oldest === undefined ? 0 : (Date.now() - oldest) / 1000 };
  }

  /**
   * Check wal_level, create the ClickHouse tables, the publication and the slot (copying the
   * tables when the slot is new). Throws `invalid_config` / `replication_broken` with the fix.
   */
  async setup(): Promise<void> {
    const db = (this.db ??= await openExecutor(this.options.source.url, {
      poolSize: 2,
      applicationName: 'weft-replicate',
    }));
    await checkWalLevel(db, this.state.source);
    const ch = this.options.clickhouse;
    await ch.ensureSchema();
    this.identity = await identifySource(db);
    this.slot = slotName(this.prefix, this.identity.database);
    this.state.slot = this.slot;
    const schemas = this.options.source.locations.map((l) => l.schema);
    await ensurePublication(db, this.prefix, schemas);
    if (this.options.rebuild)
      await dropMirror(
        db,
        ch,
        { key: this.identity.key, slot: this.slot, locations: this.options.source.locations },
        this.logger,
      );
    const slot = await db.query<{ wal_status: string | null }>(
      'select wal_status from pg_replication_slots where slot_name = $1',
      [this.slot],
    );
    // After a rebuild the old progress rows go away asynchronously (a mutation): not read.
    const progress = this.options.rebuild ? undefined : await readProgress(ch, this.identity.key);
    if (slot.rows[0]?.wal_status === 'lost')
      throw replicationBroken(
        `replication slot "${this.slot}" on ${this.state.source} was invalidated (its WAL was removed, max_slot_wal_keep_size): ClickHouse misses changes. Rebuild the mirror: \`weft replicate --rebuild\` (docs/analytics.md).`,
      );
    if (slot.rows.length === 0 && progress !== undefined)
      throw replicationBroken(
        `replication slot "${this.slot}" on ${this.state.source} is gone, but ClickHouse holds changes up to ${bigIntToLsn(progress)} from it: changes since then may be missing. Rebuild the mirror: \`weft replicate --rebuild\` (docs/analytics.md).`,
      );
    if (slot.rows.length === 0) {
      await db.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [this.slot]);
      this.logger.info({ slot: this.slot }, 'analytics: replication slot created');
    }
    if (progress === undefined) {
      await copyLocations(db, ch, this.options.source.locations, this.logger);
      await writeProgress(ch, this.identity.key, this.slot, 0n, 0);
    }
    this.startLagProbe();
    this.registerMetrics();
  }

  /** Stream until stop(); reconnects with backoff after a ClickHouse or PostgreSQL failure. */
  async run(): Promise<void> {
    let backoff = 1_000;
    while (!this.stopped) {
      const flushedBefore = this.state.batches;
      try {
        await this.streamOnce();
      } catch (error) {
        if (error instanceof WeftError && error.code === 'replication_broken') throw error;
        this.failure ??= error;
      }
      if (this.stopped) break;
      const failure = this.failure;
      if (failure instanceof WeftError && failure.code === 'replication_broken') throw failure;
      if (isSlotLost(failure))
        throw replicationBroken(
          `replication slot "${this.slot}" on ${this.state.source} can no longer stream (${String(failure)}): ClickHouse misses changes. Rebuild the mirror: \`weft replicate --rebuild\` (docs/analytics.md).`,
          failure,
        );
      this.state.restarts++;
      this.state.lastError = String(failure ?? 'the replication connection ended');
      if (this.state.batches > flushedBefore) backoff = 1_000;
      this.logger.warn(
        { err: failure, retryInMs: backoff },
        'analytics: replication interrupted; reopening from the slot',
      );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      backoff = Math.min(backoff * 2, 30_000);
    }
  }

  private async streamOnce(): Promise<void> {
    // Nothing buffered survives a restart: the slot sends it again.
    this.batcher.reset();
    this.failure = undefined;
    this.received = 0;
    this.handled = 0;
    const { LogicalReplicationService, PgoutputPlugin } = await loadReplicationClient();
    const service = new LogicalReplicationService(
      { connectionString: this.options.source.url, options: '-c DateStyle=ISO -c TimeZone=UTC' },
      // Never acknowledge on the library's own (it would confirm what ClickHouse has not got).
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    this.service = service;
    const plugin = new PgoutputPlugin({
      protoVersion: 1,
      publicationNames: [publicationName(this.prefix)],
    });
    // Every value as PostgreSQL's text (timestamps keep their microseconds; pg's parsers would
    // round them to milliseconds). Done at parse time: messages are parsed as they arrive.
    const parse = plugin.parse.bind(plugin);
    plugin.parse = (buffer: Buffer) => {
      this.received++;
      const msg = parse(buffer) as { tag: string; columns?: Array<{ parser: unknown }> };
      if (msg.tag === 'relation')
        for (const c of msg.columns ?? []) c.parser = (raw: string) => raw;
      return msg;
    };
    service.on('error', (error: Error) => {
      this.failure ??= error;
      void service.stop();
    });
    service.on('data', async (lsn: string, msg: PgoutputMessage) => {
      try {
        if (this.failure === undefined && this.batcher.add(lsn, msg)) await this.flush();
      } catch (error) {
        this.failure ??= error;
        await service.stop();
      } finally {
        this.handled++;
      }
    });
    service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
      void this.onHeartbeat(lsn, shouldRespond);
    });
    const timer = setInterval(() => {
      if (this.batcher.hasPending && this.failure === undefined)
        void this.flush().catch(async (error: unknown) => {
          this.failure ??= error;
          await service.stop();
        });
    }, this.flushIntervalMs);
    try {
      // From the slot's confirmed position (0/0 asks the server to use it).
      await service.subscribe(plugin, this.slot);
    } finally {
      clearInterval(timer);
      await service.stop().catch(() => {});
      this.service = undefined;
    }
  }

  /**
   * Write what is pending to ClickHouse, record the progress, then acknowledge the commit LSN.
   * Serialized: the interval and the batch-size trigger never overlap.
   */
  private flush(): Promise<void> {
    const next = this.flushing.then(async () => {
      const batch = this.batcher.take();
      if (batch === undefined) return;
      try {
        await insertChanges(this.options.clickhouse, batch.changes);
        await writeProgress(
          this.options.clickhouse,
          this.identity!.key,
          this.slot,
          batch.lsn,
          batch.commitUs,
        );
      } catch (error) {
        this.batcher.giveBack(batch);
        throw error;
      }
      // pgoutput commit end LSN; the library adds 1 to what it is given, PostgreSQL's own
      // subscribers confirm the end LSN itself.
      await this.service?.acknowledge(bigIntToLsn(batch.lsn - 1n));
      this.batcher.settled(batch);
      this.state.flushedLsn = bigIntToLsn(batch.lsn);
      this.state.flushedCommitAt = batch.commitUs > 0 ? new Date(batch.commitUs / 1000) : null;
      this.state.rowsWritten += batch.changes.length;
      this.state.batches++;
    });
    this.flushing = next.catch(() => {});
    return next;
  }

  /**
   * A keepalive. Idle (everything received was handled, no open transaction, nothing pending):
   * confirm the server's position, so the slot does not hold WAL that other tables wrote.
   * Otherwise confirm what ClickHouse holds.
   */
  private async onHeartbeat(lsn: string, shouldRespond: boolean): Promise<void> {
    const idle = this.received === this.handled && this.batcher.isEmpty;
    if (idle && lsnToBigInt(lsn) > 0n) {
      await this.flushing;
      await this.service?.acknowledge(bigIntToLsn(lsnToBigInt(lsn) - 1n));
    } else if (shouldRespond && this.state.flushedLsn) {
      await this.service?.acknowledge(bigIntToLsn(lsnToBigInt(this.state.flushedLsn) - 1n));
    }
  }

  /** WAL bytes the slot holds, every 5 s (what `weft_analytics_lag_bytes` reports). */
  private startLagProbe(): void {
    const probe = async () => {
      const rows = await this.db!.query<{ lag: string | null }>(
        `select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text as lag
           from pg_replication_slots where slot_name = $1`,
        [this.slot],
      );
      this.state.lagBytes = rows.rows[0]?.lag == null ? null : Number(rows.rows[0].lag);
    };
    void probe().catch(() => {});
    this.lagTimer = setInterval(() => void probe().catch(() => {}), 5_000);
    this.lagTimer.unref();
  }

  private registerMetrics(): void {
    const registry = this.options.registry;
    if (!registry) return;
    const labels = () => ({ source: this.state.slot });
    const gauge = (name: string, help: string, value: () => number | null) =>
      this.untrack.push(
        registry
          .collected(name, 'gauge', help, (a, b) => a + b)
          .track(this, () => {
            const v = value();
            return v === null ? [] : [{ labels: labels(), value: v }];
          }),
      );
    gauge(
      'weft_analytics_lag_bytes',
      'WAL bytes between the run-ops database and what ClickHouse holds (the slot\u2019s confirmed position).',
      () => this.state.lagBytes,
    );
    gauge(
      'weft_analytics_lag_seconds',
      'Seconds since the oldest committed change not yet in ClickHouse committed (0 when caught up).',
      () => this.status.lagSeconds,
    );
    gauge(
      'weft_analytics_rows_written',
      'Rows written to ClickHouse by this process.',
      () => this.state.rowsWritten,
    );
    gauge(
      'weft_analytics_restarts',
      'Times the stream was reopened after a failure.',
      () => this.state.restarts,
    );
  }

  /** Stop streaming (what was not acknowledged is sent again at the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (this.lagTimer) clearInterval(this.lagTimer);
    for (const u of this.untrack) u();
    await this.service?.stop().catch(() => {});
    await this.flushing;
    await this.db?.close();
    this.db = undefined;
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

function isSlotLost(error: unknown): boolean {
  const text = String(error);
  return (
    /replication slot "[^"]+" does not exist/.test(text) ||
    /has already been removed/.test(text) ||
    /can no longer get changes from replication slot/.test(text) ||
    /This slot has been invalidated/.test(text)
  );
}
