/**
 * What `weft replicate` does before it streams, and the bookkeeping it keeps in ClickHouse: the
 * wal_level check, the publication (every location's run tables, REPLICA IDENTITY FULL, also what
 * `weft migrate` calls through coPublishIfMirrored), the slot's name, the source's identity, the
 * first copy of a new slot, the `--rebuild` drop, and the progress rows (replication_progress)
 * that say which commit LSN ClickHouse holds. The stream and its acknowledgement rule are
 * replicator.ts.
 */
import { WeftError } from '../core/errors.js';
import type { Executor } from '../store/executor.js';
import type { Clickhouse } from './clickhouse.js';
import { quoteString } from './clickhouse-sql.js';
import { copySelect, MIRROR_TABLES, toMirrorRow, type MirrorTable } from './mirror-tables.js';

export const publicationName = (prefix: string) => `${prefix}_analytics`;

export function slotName(prefix: string, database: string): string {
  return `${prefix}_analytics_${database}`
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 63);
}

/** The error that stops the replicator for good: the message says how to rebuild. */
export function replicationBroken(message: string, cause?: unknown): WeftError {
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
  throw replicationBroken(
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

export interface SourceIdentity {
  /** `<system identifier>/<database>`: the source's key in replication_progress. */
  key: string;
  database: string;
}

export async function identifySource(db: Executor): Promise<SourceIdentity> {
  const rows = await db.query<{ sys: string; db: string }>(
    `select (select system_identifier::text from pg_control_system()) as sys, current_database() as db`,
  );
  const r = rows.rows[0]!;
  return { key: `${r.sys}/${r.db}`, database: r.db };
}

export async function readProgress(ch: Clickhouse, sourceKey: string): Promise<bigint | undefined> {
  const rows = await ch.query<{ lsn: string }>(
    `SELECT max(lsn) AS lsn, count() AS n FROM ${ch.database}.replication_progress WHERE source = ${quoteString(sourceKey)} HAVING n > 0`,
  );
  return rows[0] ? BigInt(rows[0].lsn) : undefined;
}

export async function writeProgress(
  ch: Clickhouse,
  sourceKey: string,
  slot: string,
  lsn: bigint,
  commitUs: number,
): Promise<void> {
  await ch.insert('replication_progress', [
    {
      source: sourceKey,
      slot,
      lsn: lsn.toString(),
      commit_us: commitUs,
      written_us: Date.now() * 1000,
    },
  ]);
}

interface SetupLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** `--rebuild`: drop the slot, forget the progress and delete the mirrored rows of these locations. */
export async function dropMirror(
  db: Executor,
  ch: Clickhouse,
  source: { key: string; slot: string; locations: Array<{ tag: string }> },
  logger: SetupLogger,
): Promise<void> {
  await db.query(
    `select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1`,
    [source.slot],
  );
  const tags = source.locations.map((l) => quoteString(l.tag)).join(', ');
  // ALTER … DELETE is a mutation: asynchronous, but it applies to the parts that exist when it
  // is submitted, so the copy that follows is not affected by it.
  for (const t of MIRROR_TABLES)
    await ch.command(`ALTER TABLE ${ch.database}.${t.name} DELETE WHERE location IN (${tags})`);
  await ch.command(
    `ALTER TABLE ${ch.database}.replication_progress DELETE WHERE source = ${quoteString(source.key)}`,
  );
  logger.warn({ slot: source.slot }, 'analytics: mirror of this database dropped for rebuild');
}

/** The first copy: every row of every mirrored table, version 0, keyset pages of 10,000. */
export async function copyLocations(
  db: Executor,
  ch: Clickhouse,
  locations: Array<{ tag: string; schema: string }>,
  logger: SetupLogger,
): Promise<void> {
  for (const loc of locations) {
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
        await ch.insert(
          table.name,
          rows.rows.map((r) => toMirrorRow(table, loc.tag, r, 0n, false)),
        );
        copied += rows.rows.length;
        const last = rows.rows[rows.rows.length - 1]!;
        after = key.map((k) => last[k]);
        if (rows.rows.length < 10000) break;
      }
      logger.info({ location: loc.tag, table: table.name, rows: copied }, 'analytics: copied');
    }
  }
}
