/**
 * The ClickHouse side of the analytics mirror: which PostgreSQL columns of each location's run
 * tables are mirrored (runs, step_runs, attempts; never dataclip bodies, run state or step
 * bookkeeping arrays), their ClickHouse types, the DDL, and the conversion of a pgoutput row
 * (every value as PostgreSQL's text output) into a ClickHouse row.
 *
 * Every table is a `ReplacingMergeTree(version)`: `version` is the WAL position (LSN) of the
 * change, so a change replayed after a crash or an outage collapses with its first copy, and the
 * newest change of a row wins; a delete is a row with `deleted = 1` at the delete's LSN. Readers
 * use `FINAL` and `deleted = 0`. The first copy of a location (before streaming) has version 0:
 * every change after the slot was created has a larger LSN.
 *
 * Timestamps are Int64 microseconds since the epoch (UTC): ClickHouse 18.16 has no DateTime64,
 * and PostgreSQL timestamps are microseconds, so nothing is rounded and the runs list can issue
 * the same keyset cursors as PostgreSQL's.
 */
import { quoteIdentifier } from './clickhouse-sql.js';

export type ColumnKind = 'string' | 'nstring' | 'bool' | 'int' | 'nint' | 'ts' | 'nts' | 'json';

export interface MirrorColumn {
  /** PostgreSQL column. */
  pg: string;
  /** ClickHouse column. */
  ch: string;
  kind: ColumnKind;
}

export interface MirrorTable {
  /** The PostgreSQL table name inside a location schema, and the ClickHouse table name. */
  name: 'runs' | 'step_runs' | 'attempts';
  /**
   * The PostgreSQL tables it may come from, newest layout first: since location migration 0010,
   * attempts are stored in `attempt_rows` (and `attempts` is a view over it, which logical
   * replication cannot publish); the mirror keeps the stored rows. Since location 0016 those are
   * the attempts that did not succeed (failed, lost, canceled) and the parked ones of control
   * nodes: an attempt in progress or succeeded is its step run's (`step_runs.attempt_count` is
   * the number of attempts a step run made, the last one its current attempt).
   */
  pgNames: string[];
  columns: MirrorColumn[];
  /** PostgreSQL primary key (keyset order of the first copy). */
  pgKey: string[];
  /** ClickHouse sorting key: unique per row, and what the queries filter on first. */
  orderBy: string[];
}

const col = (pg: string, kind: ColumnKind, ch = pg): MirrorColumn => ({ pg, ch, kind });
const ts = (pg: string, nullable = false): MirrorColumn =>
  col(pg, nullable ? 'nts' : 'ts', pg.replace(/_at$/, '_us'));

export const MIRROR_TABLES: MirrorTable[] = [
  {
    name: 'runs',
    pgNames: ['runs'],
    columns: [
      col('id', 'string'),
      col('environment_id', 'string'),
      col('workflow_id', 'string'),
      col('version_id', 'string'),
      col('status', 'string'),
      col('trigger_kind', 'string'),
      col('trigger_ref', 'nstring'),
      col('input_dataclip_id', 'nstring'),
      col('final_dataclip_id', 'nstring'),
      col('save_dataclips', 'bool'),
      col('idempotency_key', 'nstring'),
      col('rerun_of', 'nstring'),
      col('rerun_from_step', 'nstring'),
      col('parent_run_id', 'nstring'),
      col('error', 'json'),
      ts('created_at'),
      ts('started_at', true),
      ts('finished_at', true),
      ts('updated_at'),
    ],
    pgKey: ['id'],
    // the runs list: environment, then newest first by (created, id)
    orderBy: ['environment_id', 'created_us', 'id'],
  },
  {
    name: 'step_runs',
    pgNames: ['step_runs'],
    columns: [
      col('id', 'string'),
      col('run_id', 'string'),
      col('environment_id', 'string'),
      col('workflow_id', 'string'),
      col('step_id', 'string'),
      col('step_key', 'string'),
      col('kind', 'string'),
      col('scope_key', 'nstring'),
      col('iteration', 'nint'),
      col('status', 'string'),
      col('attempt_count', 'int'),
      col('max_attempts', 'int'),
      col('reused_from', 'nstring'),
      ts('created_at'),
      ts('started_at', true),
      ts('finished_at', true),
    ],
    pgKey: ['id'],
    // per-step percentiles: environment, workflow, step
    orderBy: ['environment_id', 'workflow_id', 'step_id', 'id'],
  },
  {
    name: 'attempts',
    pgNames: ['attempt_rows', 'attempts'],
    columns: [
      col('step_run_id', 'string'),
      col('number', 'int'),
      col('run_id', 'string'),
      col('worker_id', 'string'),
      col('status', 'string'),
      ts('started_at'),
      ts('finished_at', true),
    ],
    pgKey: ['step_run_id', 'number'],
    orderBy: ['run_id', 'step_run_id', 'number'],
  },
];

export const MIRROR_TABLE_NAMES = MIRROR_TABLES.map((t) => t.name);

const CH_TYPES: Record<ColumnKind, string> = {
  string: 'String',
  nstring: 'Nullable(String)',
  bool: 'UInt8',
  int: 'Int32',
  nint: 'Nullable(Int32)',
  ts: 'Int64',
  nts: 'Nullable(Int64)',
  json: 'Nullable(String)',
};

/**
 * DDL of the mirror in `database`: the three tables and `replication_progress` (per source
 * database: the last LSN ClickHouse holds, its commit time; what `weft replicate status` and a
 * restart after a lost slot read). `create … if not exists`: safe to run at every start.
 * Syntax that 18.16 and current ClickHouse both accept (`ENGINE = … ORDER BY`, no PARTITION BY:
 * one partition; a merge keeps parts bounded, and the mirror holds no more than the run tables).
 */
export function mirrorDdl(database: string): string[] {
  const db = quoteIdentifier(database);
  return [
    `CREATE DATABASE IF NOT EXISTS ${db}`,
    ...MIRROR_TABLES.map(
      (t) =>
        `CREATE TABLE IF NOT EXISTS ${db}.${t.name} (location String, ${t.columns
          .map((c) => `${c.ch} ${CH_TYPES[c.kind]}`)
          .join(
            ', ',
          )}, version UInt64, deleted UInt8) ENGINE = ReplacingMergeTree(version) ORDER BY (${t.orderBy.join(', ')})`,
    ),
    `CREATE TABLE IF NOT EXISTS ${db}.replication_progress (source String, slot String, lsn UInt64, commit_us Int64, written_us Int64) ENGINE = ReplacingMergeTree(lsn) ORDER BY source`,
  ];
}

/** PostgreSQL timestamptz text (`2026-01-31 09:30:00.123456+00`, any offset) → µs since epoch. */
export function timestampToMicros(text: string): number {
  const m =
    /^(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([+-])(\d\d)(?::?(\d\d))?(?::(\d\d))?)?$/.exec(
      text,
    );
  if (!m)
    throw new Error(
      `timestamp "${text}" is not PostgreSQL's ISO output (DateStyle ISO expected; infinity and BC dates are not mirrored)`,
    );
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  const frac = Number((m[7] ?? '').padEnd(6, '0'));
  const offsetS = m[8]
    ? (m[8] === '-' ? -1 : 1) * (+m[9]! * 3600 + +(m[10] ?? 0) * 60 + +(m[11] ?? 0))
    : 0;
  return (ms / 1000 - offsetS) * 1_000_000 + frac;
}

/** One value of PostgreSQL's text output → the ClickHouse JSONEachRow value of `kind`. */
function convert(kind: ColumnKind, raw: string | null, where: string): unknown {
  if (raw === null) {
    if (kind === 'nstring' || kind === 'nint' || kind === 'nts' || kind === 'json') return null;
    throw new Error(`${where} is null in PostgreSQL but not nullable in the mirror`);
  }
  switch (kind) {
    case 'string':
    case 'nstring':
    case 'json':
      return raw;
    case 'bool':
      return raw === 't' || raw === 'true' ? 1 : 0;
    case 'int':
    case 'nint':
      return Number(raw);
    case 'ts':
    case 'nts':
      return timestampToMicros(raw);
  }
}

/**
 * A ClickHouse row from a row of PostgreSQL text values (pgoutput's tuple, or the first copy's
 * select with every column cast to text). `undefined` values (an unchanged TOASTed column) must
 * have been filled from the old row by the caller.
 */
export function toMirrorRow(
  table: MirrorTable,
  location: string,
  row: Record<string, string | null | undefined>,
  version: bigint,
  deleted: boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = { location };
  for (const c of table.columns) {
    const raw = row[c.pg];
    if (raw === undefined)
      throw new Error(
        `${location}.${table.name}.${c.pg} is missing from the replicated row (an unchanged TOASTed value without REPLICA IDENTITY FULL: run \`weft migrate\`)`,
      );
    out[c.ch] = convert(c.kind, raw, `${location}.${table.name}.${c.pg}`);
  }
  out.version = version.toString();
  out.deleted = deleted ? 1 : 0;
  return out;
}

/** The first copy's select: every mirrored column as PostgreSQL text, in primary-key order. */
export function copySelect(table: MirrorTable, schema: string, pgName: string): string {
  return `select ${table.columns.map((c) => `${c.pg}::text as ${c.pg}`).join(', ')} from ${schema}.${pgName}`;
}

/** `0/16B3748` → 23803720n. */
export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  if (hi === undefined || lo === undefined) throw new Error(`"${lsn}" is not an LSN`);
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

export function bigIntToLsn(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}
