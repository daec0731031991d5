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
 * Why one file of ~750 lines: setup (wal_level, publication, slot, first copy), the stream and its
 * acknowledgement rule are one protocol whose invariants (what is acknowledged when) must be read
 * together; the pure parts (tables, conversions, literals) live in mirror-tables.ts and
 * clickhouse-sql.ts.
 */
import { WeftError } from '../core/errors.js';
import type { MetricsRegistry } from '../engine/metrics.js';
import type { Executor } from '../store/executor.js';
import { openExecutor } from '../store/stores.js';
import type { Clickhouse } from './clickhouse.js';
import { quoteString } from './clickhouse-sql.js';
import {
  bigIntToLsn,
  copySelect,
  lsnToBigInt,
  MIRROR_TABLES,
  toMirrorRow,
  type MirrorTable,
} from './mirror-tables.js';

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

export const publicationName = (prefix: string) => `${prefix}_analytics`;
export function slotName(prefix: string, database: string): string {
  return `${prefix}_analytics_${database}`
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 63);
}

function broken(message: string, cause?: unknown): WeftError {
  return new WeftError('replication_broken', message, cause === undefined ? {} : { cause });
}

/** Refuse to start unless the database can do logical replication, saying how to set it. */
export async function checkWalLevel(db: Executor, where: string): Promise<void> {
  const rows = await db.query<{ wal_level: string }>('show wal_level');
  const level = rows.rows[0]?.wal_level;
  if (level !== 'logical')
    throw new WeftError(
      'invalid_config',
      `PostgreSQL at ${where} has wal_level = ${level ?? 'unknown'}; the analytics mirror streams by logical replication, which needs wal_level = logical. Run \`alter system set wal_level = logical\` as a superuser and restart PostgreSQL (it takes effect only at server start); keep max_replication_slots and max_wal_senders at 1 or more per run-ops database.`,
    );
}

/**
 * Put every run table of these locations in the publication (created if missing), with REPLICA
 * IDENTITY FULL. Idempotent; what `weft migrate` does for a location created later.
 */
export async function ensurePublication(
  db: Executor,
  prefix: string,
  schemas: string[],
): Promise<string[]> {
  const pub = publicationName(prefix);
  const tables: string[] = [];
  const changed = new Set<string>();
  for (const s of schemas)
    for (const t of MIRROR_TABLES) tables.push(`${s}.${await storedTableName(db, s, t)}`);
  for (const t of tables) {
    const ident = await db.query<{ relreplident: string }>(
      `select relreplident from pg_class where oid = $1::regclass`,
      [t],
    );
    if (ident.rows[0]?.relreplident !== 'f') {
      await db.query(`alter table ${t} replica identity full`);
      changed.add(t);
    }
  }
  const exists = await db.query('select 1 from pg_publication where pubname = $1', [pub]);
  if (exists.rows.length === 0) {
    await db.query(`create publication ${pub} for table ${tables.join(', ')}`).catch((e) => {
      // a concurrent replicator created it first
      if (!/already exists/.test(String(e))) throw e;
    });
  }
  const published = await db.query<{ t: string }>(
    `select schemaname || '.' || tablename as t from pg_publication_tables where pubname = $1`,
    [pub],
  );
  const have = new Set(published.rows.map((r) => r.t));
  const missing = tables.filter((t) => !have.has(t));
  if (missing.length > 0)
    await db.query(`alter publication ${pub} add table ${missing.join(', ')}`);
  for (const t of missing) changed.add(t);
  return [...changed];
}

/** Which of a mirrored table's PostgreSQL names holds its rows in this schema (a base table). */
export async function storedTableName(
  db: Executor,
  schema: string,
  table: MirrorTable,
): Promise<string> {
  for (const name of table.pgNames) {
    const rows = await db.query<{ kind: string | null }>(
      `select (select relkind::text from pg_class where oid = to_regclass($1)) as kind`,
      [`${schema}.${name}`],
    );
    if (rows.rows[0]?.kind === 'r') return name;
  }
  throw broken(
    `schema ${schema} has no table ${table.pgNames.join(' or ')}: it is not a migrated location. Run \`weft migrate\`, or remove the location from WEFT_LOCATIONS.`,
  );
}

/**
 * At migrate time: when this database is mirrored (its publication exists), co-publish every
 * location's run tables with REPLICA IDENTITY FULL, so a location created now is streamed from
 * its first row. Nothing when the mirror is not in use, or on PGlite.
 */
export async function coPublishIfMirrored(
  locations: Array<{ db: Executor; schema: string }>,
  prefix = 'weft',
): Promise<string[]> {
  // returns the tables added to the publication (or given REPLICA IDENTITY FULL)
  const byDb = new Map<Executor, string[]>();
  for (const l of locations) byDb.set(l.db, [...(byDb.get(l.db) ?? []), l.schema]);
  const done: string[] = [];
  for (const [db, schemas] of byDb) {
    if (db.kind !== 'postgres') continue;
    const pub = await db.query('select 1 from pg_publication where pubname = $1', [
      publicationName(prefix),
    ]);
    if (pub.rows.length === 0) continue;
    done.push(...(await ensurePublication(db, prefix, schemas)));
  }
  return done;
}

interface SourceIdentity {
  /** `<system identifier>/<database>`: the source's key in replication_progress. */
  key: string;
  database: string;
}

async function identify(db: Executor): Promise<SourceIdentity> {
  const rows = await db.query<{ sys: string; db: string }>(
    `select (select system_identifier::text from pg_control_system()) as sys, current_database() as db`,
  );
  const r = rows.rows[0]!;
  return { key: `${r.sys}/${r.db}`, database: r.db };
}

interface Change {
  table: MirrorTable;
  row: Record<string, unknown>;
}

interface Relation {
  table: MirrorTable;
  location: string;
}

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
  private readonly batchRows: number;
  private readonly flushIntervalMs: number;
  private db: Executor | undefined;
  private identity: SourceIdentity | undefined;
  private slot = '';
  private stopped = false;
  private service:
    { stop(): Promise<unknown>; acknowledge(lsn: string): Promise<boolean> } | undefined;
  private wake: (() => void) | undefined;
  private readonly relations = new Map<number, Relation>();
  // the open transaction, and committed transactions not yet in ClickHouse
  private current: Change[] = [];
  private inTransaction = false;
  private pending: Change[] = [];
  private pendingLsn: bigint | undefined;
  private pendingCommitUs = 0;
  private oldestPendingCommitMs: number | undefined;
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
    this.batchRows = options.batchRows ?? 5_000;
    this.flushIntervalMs = options.flushIntervalMs ?? 250;
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
    const oldest = this.oldestPendingCommitMs;
    return { ...this.state, lagSeconds: oldest === undefined ? 0 : (Date.now() - oldest) / 1000 };
  }

  private get locationOfSchema(): Map<string, string> {
    return new Map(this.options.source.locations.map((l) => [l.schema, l.tag]));
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
    this.identity = await identify(db);
    this.slot = slotName(this.prefix, this.identity.database);
    this.state.slot = this.slot;
    const schemas = this.options.source.locations.map((l) => l.schema);
    await ensurePublication(db, this.prefix, schemas);
    if (this.options.rebuild) await this.dropMirror();
    const slot = await db.query<{ wal_status: string | null }>(
      'select wal_status from pg_replication_slots where slot_name = $1',
      [this.slot],
    );
    // After a rebuild the old progress rows go away asynchronously (a mutation): not read.
    const progress = this.options.rebuild ? undefined : await this.readProgress();
    if (slot.rows[0]?.wal_status === 'lost')
      throw broken(
        `replication slot "${this.slot}" on ${this.state.source} was invalidated (its WAL was removed, max_slot_wal_keep_size): ClickHouse misses changes. Rebuild the mirror: \`weft replicate --rebuild\` (docs/analytics.md).`,
      );
    if (slot.rows.length === 0 && progress !== undefined)
      throw broken(
        `replication slot "${this.slot}" on ${this.state.source} is gone, but ClickHouse holds changes up to ${bigIntToLsn(progress)} from it: changes since then may be missing. Rebuild the mirror: \`weft replicate --rebuild\` (docs/analytics.md).`,
      );
    if (slot.rows.length === 0) {
      await db.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [this.slot]);
      this.logger.info({ slot: this.slot }, 'analytics: replication slot created');
    }
    if (progress === undefined) {
      await this.copyAll();
      await this.writeProgress(0n, 0);
    }
    this.startLagProbe();
    this.registerMetrics();
  }

  private async readProgress(): Promise<bigint | undefined> {
    const ch = this.options.clickhouse;
    const rows = await ch.query<{ lsn: string }>(
      `SELECT max(lsn) AS lsn, count() AS n FROM ${ch.database}.replication_progress WHERE source = ${quoteString(this.identity!.key)} HAVING n > 0`,
    );
    return rows[0] ? BigInt(rows[0].lsn) : undefined;
  }

  private async writeProgress(lsn: bigint, commitUs: number): Promise<void> {
    await this.options.clickhouse.insert('replication_progress', [
      {
        source: this.identity!.key,
        slot: this.slot,
        lsn: lsn.toString(),
        commit_us: commitUs,
        written_us: Date.now() * 1000,
      },
    ]);
  }

  /** `--rebuild`: drop the slot, forget the progress and delete the mirrored rows of these locations. */
  private async dropMirror(): Promise<void> {
    const db = this.db!;
    const ch = this.options.clickhouse;
    await db.query(
      `select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1`,
      [this.slot],
    );
    const tags = this.options.source.locations.map((l) => quoteString(l.tag)).join(', ');
    // ALTER … DELETE is a mutation: asynchronous, but it applies to the parts that exist when it
    // is submitted, so the copy that follows is not affected by it.
    for (const t of MIRROR_TABLES)
      await ch.command(`ALTER TABLE ${ch.database}.${t.name} DELETE WHERE location IN (${tags})`);
    await ch.command(
      `ALTER TABLE ${ch.database}.replication_progress DELETE WHERE source = ${quoteString(this.identity!.key)}`,
    );
    this.logger.warn({ slot: this.slot }, 'analytics: mirror of this database dropped for rebuild');
  }

  /** The first copy: every row of every mirrored table, version 0, keyset pages of 10,000. */
  private async copyAll(): Promise<void> {
    const db = this.db!;
    for (const loc of this.options.source.locations) {
      for (const table of MIRROR_TABLES) {
        const pgName = await storedTableName(db, loc.schema, table);
        const key = table.pgKey;
        let after: unknown[] | undefined;
        let copied = 0;
        for (;;) {
          const where = after
            ? ` where (${key.join(', ')}) > (${key.map((_, i) => `$${i + 1}`).join(', ')})`
            : '';
          const rows = await db.query<Record<string, string | null>>(
            `${copySelect(table, loc.schema, pgName)}${where} order by ${key.join(', ')} limit 10000`,
            after ?? [],
          );
          if (rows.rows.length === 0) break;
          await this.options.clickhouse.insert(
            table.name,
            rows.rows.map((r) => toMirrorRow(table, loc.tag, r, 0n, false)),
          );
          copied += rows.rows.length;
          const last = rows.rows[rows.rows.length - 1]!;
          after = key.map((k) => last[k]);
          if (rows.rows.length < 10000) break;
        }
        this.logger.info(
          { location: loc.tag, table: table.name, rows: copied },
          'analytics: copied',
        );
      }
    }
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
        throw broken(
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
    this.current = [];
    this.pending = [];
    this.pendingLsn = undefined;
    this.oldestPendingCommitMs = undefined;
    this.inTransaction = false;
    this.failure = undefined;
    this.relations.clear();
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
        if (this.failure === undefined) await this.onMessage(lsn, msg);
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
      if (this.pendingLsn !== undefined && this.failure === undefined)
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

  private async onMessage(lsn: string, msg: PgoutputMessage): Promise<void> {
    switch (msg.tag) {
      case 'relation': {
        const tag = this.locationOfSchema.get(msg.schema);
        const table = MIRROR_TABLES.find((t) => t.pgNames.includes(msg.name));
        if (tag === undefined || table === undefined)
          throw broken(
            `publication "${publicationName(this.prefix)}" sent table ${msg.schema}.${msg.name}, which this replicator does not mirror (its locations: ${this.options.source.locations.map((l) => l.schema).join(', ')}). A location was added: restart \`weft replicate\` with WEFT_LOCATIONS listing it (nothing was acknowledged past it, so nothing is lost).`,
          );
        const names = new Set(msg.columns.map((c) => c.name));
        const missing = table.columns.filter((c) => !names.has(c.pg)).map((c) => c.pg);
        if (missing.length > 0)
          throw broken(
            `table ${msg.schema}.${msg.name} has no column ${missing.join(', ')} that the mirror needs: this replicator is newer than the database's migrations. Run \`weft migrate\`, or run the \`weft replicate\` of the deployed version.`,
          );
        this.relations.set(msg.relationOid, { table, location: tag });
        return;
      }
      case 'begin':
        this.inTransaction = true;
        this.current = [];
        return;
      case 'insert':
      case 'update':
      case 'delete': {
        const rel = this.relations.get(msg.relation.relationOid);
        if (!rel)
          throw broken(
            `a change to table oid ${msg.relation.relationOid} came before its relation message`,
          );
        const version = lsnToBigInt(lsn);
        if (msg.tag === 'delete') {
          if (!msg.old)
            throw broken(
              `a delete on ${msg.relation.schema}.${msg.relation.name} carries only its key: the table lacks REPLICA IDENTITY FULL (weft replicate and weft migrate set it; someone reset it). Run \`weft migrate\`, then \`weft replicate --rebuild\`.`,
            );
          this.current.push({
            table: rel.table,
            row: toMirrorRow(rel.table, rel.location, msg.old, version, true),
          });
        } else {
          const row = { ...msg.new };
          // an unchanged TOASTed value comes as undefined: the old row (REPLICA IDENTITY FULL) has it
          if (msg.tag === 'update' && msg.old)
            for (const k of Object.keys(row)) if (row[k] === undefined) row[k] = msg.old[k];
          this.current.push({
            table: rel.table,
            row: toMirrorRow(rel.table, rel.location, row, version, false),
          });
        }
        return;
      }
      case 'truncate':
        throw broken(
          `TRUNCATE of ${msg.relations.map((r) => `${r.schema}.${r.name}`).join(', ')}: the mirror cannot follow a truncate. Rebuild it: \`weft replicate --rebuild\`.`,
        );
      case 'commit': {
        this.inTransaction = false;
        if (this.current.length > 0) {
          for (const c of this.current) this.pending.push(c);
          this.current = [];
          this.oldestPendingCommitMs ??= Date.now();
        }
        // Even an empty transaction moves the position to acknowledge.
        this.pendingLsn = lsnToBigInt(msg.commitEndLsn!);
        // pgoutput: µs since 2000-01-01; kept as µs since the Unix epoch
        this.pendingCommitUs = Number(msg.commitTime) + 946_684_800_000_000;
        if (this.pending.length >= this.batchRows) await this.flush();
        return;
      }
      default:
        return;
    }
  }

  /**
   * Write what is pending to ClickHouse, record the progress, then acknowledge the commit LSN.
   * Serialized: the interval and the batch-size trigger never overlap.
   */
  private flush(): Promise<void> {
    const next = this.flushing.then(async () => {
      const batch = this.pending;
      const lsn = this.pendingLsn;
      const commitUs = this.pendingCommitUs;
      if (lsn === undefined) return;
      this.pending = [];
      const oldest = this.oldestPendingCommitMs;
      this.oldestPendingCommitMs = undefined;
      try {
        const byTable = new Map<string, Record<string, unknown>[]>();
        for (const c of batch) {
          const rows = byTable.get(c.table.name) ?? [];
          rows.push(c.row);
          byTable.set(c.table.name, rows);
        }
        for (const [table, rows] of byTable) await this.options.clickhouse.insert(table, rows);
        await this.writeProgress(lsn, commitUs);
      } catch (error) {
        this.oldestPendingCommitMs = oldest;
        throw error;
      }
      // pgoutput commit end LSN; the library adds 1 to what it is given, PostgreSQL's own
      // subscribers confirm the end LSN itself.
      await this.service?.acknowledge(bigIntToLsn(lsn - 1n));
      if (this.pendingLsn === lsn) this.pendingLsn = undefined;
      this.state.flushedLsn = bigIntToLsn(lsn);
      this.state.flushedCommitAt = commitUs > 0 ? new Date(commitUs / 1000) : null;
      this.state.rowsWritten += batch.length;
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
    const idle =
      this.received === this.handled &&
      !this.inTransaction &&
      this.pending.length === 0 &&
      this.pendingLsn === undefined;
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

// ── the replication client, loaded on first use (an optional dependency) ──

interface PgoutputRelation {
  tag: 'relation';
  relationOid: number;
  schema: string;
  name: string;
  columns: Array<{ name: string }>;
}
type Tuple = Record<string, string | null | undefined>;
type PgoutputMessage =
  | PgoutputRelation
  | { tag: 'begin' }
  | { tag: 'commit'; commitEndLsn: string | null; commitTime: bigint }
  | { tag: 'insert'; relation: PgoutputRelation; new: Tuple }
  | { tag: 'update'; relation: PgoutputRelation; old: Tuple | null; new: Tuple }
  | { tag: 'delete'; relation: PgoutputRelation; old: Tuple | null }
  | { tag: 'truncate'; relations: PgoutputRelation[] }
  | { tag: 'type' | 'origin' | 'message' };

interface ReplicationService {
  on(event: 'error', fn: (e: Error) => void): void;
  on(event: 'data', fn: (lsn: string, msg: PgoutputMessage) => Promise<void>): void;
  on(event: 'heartbeat', fn: (lsn: string, ts: number, shouldRespond: boolean) => void): void;
  subscribe(plugin: unknown, slot: string): Promise<unknown>;
  stop(): Promise<unknown>;
  acknowledge(lsn: string): Promise<boolean>;
}

interface ReplicationModule {
  LogicalReplicationService: new (
    client: Record<string, unknown>,
    config: Record<string, unknown>,
  ) => ReplicationService;
  PgoutputPlugin: new (options: { protoVersion: 1; publicationNames: string[] }) => {
    parse(buffer: Buffer): unknown;
  };
}

async function loadReplicationClient(): Promise<ReplicationModule> {
  try {
    return (await import('pg-logical-replication')) as unknown as ReplicationModule;
  } catch (error) {
    throw new WeftError(
      'invalid_config',
      '`weft replicate` needs the package "pg-logical-replication" (and "pg"): run `npm install pg-logical-replication pg`.',
      { cause: error },
    );
  }
}
