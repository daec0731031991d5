/**
 * Run analytics: the filtered runs list and the metrics endpoints (runs per status over time,
 * failure rate, run duration, step duration and queue wait percentiles), answered by ClickHouse
 * when the mirror is configured and by PostgreSQL otherwise — the same answers, by construction:
 *
 * - durations are integer microseconds on both sides (PostgreSQL: `extract(epoch …)` is numeric,
 *   exact; ClickHouse: the mirror stores µs), reported as milliseconds (µs / 1000);
 * - a percentile is the nearest rank: the ⌈p·n/100⌉-th smallest value (p an integer percent), an
 *   element of the data, computed from the sorted values on both sides (not percentile_cont /
 *   quantile, which interpolate or sample differently);
 * - buckets are whole multiples of the bucket width since the Unix epoch, UTC;
 * - time filters (`from` inclusive, `to` exclusive) are on created_at, normalized to µs once.
 *
 * ClickHouse reads use FINAL (the newest version of each row) and `deleted = 0`. Its answers are as
 * fresh as the replication lag (`weft_analytics_lag_seconds`); by-id reads never come here.
 *
 * Kept whole (about 510 lines): the two implementations sit side by side on purpose; each query's
 * ClickHouse and PostgreSQL forms must stay equivalent, and reading them together is how.
 */
import { queryFingerprint } from '../store/runs/queries.js';
import { WeftError } from '../core/errors.js';
import { parseRunScopedId } from '../core/ids.js';
import type { RunRecord, RunStatus, TriggerKind } from '../store/rows.js';
import type { ListRunsQuery, RunStore } from '../store/run-store.js';
import type { Executor } from '../store/executor.js';
import type { Clickhouse } from './clickhouse.js';
import { quoteInt, quoteString, quoteStringList } from './clickhouse-sql.js';
import { timestampToMicros } from './mirror-tables.js';

export interface MetricsQuery {
  environmentId: string;
  workflowId?: string;
  /** created_at ≥ from (ISO 8601). */
  from?: string;
  /** created_at < to (ISO 8601). */
  to?: string;
}

export type Bucket = 'minute' | 'hour' | 'day';
export const BUCKET_US: Record<Bucket, number> = {
  minute: 60_000_000,
  hour: 3_600_000_000,
  day: 86_400_000_000,
};

export const PERCENTILES = [50, 95, 99] as const;

export interface Percentiles {
  count: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

export interface RunAnalytics {
  readonly source: 'clickhouse' | 'postgres';
  listRuns(q: ListRunsQuery): Promise<{ data: RunRecord[]; nextCursor: string | null }>;
  runsOverTime(
    q: MetricsQuery & { bucket: Bucket },
  ): Promise<Array<{ bucketStart: string; status: RunStatus; count: number }>>;
  failureRate(
    q: MetricsQuery,
  ): Promise<Array<{ workflowId: string; finished: number; failed: number; failureRate: number }>>;
  runDurations(q: MetricsQuery): Promise<Array<{ workflowId: string } & Percentiles>>;
  stepDurations(
    q: MetricsQuery,
  ): Promise<Array<{ workflowId: string; stepId: string } & Percentiles>>;
  queueWait(q: MetricsQuery): Promise<Array<{ workflowId: string } & Percentiles>>;
}

// ── shared pieces ──

/** ISO 8601 (Z or an offset) → µs since the epoch. */
export function isoToMicros(iso: string): number {
  return timestampToMicros(iso.replace(/Z$/i, '+00:00'));
}

/** µs → `2026-01-31T09:30:00.123456Z` (the keyset cursor's time format). */
export function microsToKey(us: number): string {
  const ms = Math.floor(us / 1000);
  const micro = us - ms * 1000;
  return `${new Date(ms).toISOString().slice(0, 23)}${String(micro).padStart(3, '0')}Z`;
}

const microsToIso = (us: number): string => new Date(Math.floor(us / 1000)).toISOString();

/** Nearest-rank percentiles of values sorted ascending (µs), in ms. */
function percentilesOf(sortedUs: number[]): Percentiles {
  const n = sortedUs.length;
  const at = (p: number) => (n === 0 ? null : sortedUs[Math.floor((p * n + 99) / 100) - 1]! / 1000);
  return { count: n, p50Ms: at(50), p95Ms: at(95), p99Ms: at(99) };
}

// The runs list's keyset cursor, in the format src/store/runs/queries.ts issues (base64url of
// JSON [created µs text, id, query fingerprint]) so a cursor from either source continues on the
// other; the fingerprint is that file's own. The equality property test (analytics.list.test.ts)
// pages both sources with each other's cursors.
const fingerprint = queryFingerprint;

function invalidCursor(cursor: string): WeftError {
  return new WeftError(
    'invalid_cursor',
    `cursor "${cursor.slice(0, 40)}" is not a cursor this API issued; pass the nextCursor of a previous page, or omit it for the first page.`,
  );
}

function decodeCursor(q: ListRunsQuery): { us: number; id: string } | undefined {
  if (!q.cursor) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(q.cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor(q.cursor);
  }
  if (
    !Array.isArray(parsed) ||
    !(parsed.length === 2 || (parsed.length === 3 && typeof parsed[2] === 'string')) ||
    typeof parsed[0] !== 'string' ||
    typeof parsed[1] !== 'string' ||
    !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(parsed[0]) ||
    parsed[0] < '0001' ||
    parseRunScopedId(parsed[1])?.prefix !== 'run'
  )
    throw invalidCursor(q.cursor);
  const ms = Date.parse(parsed[0]);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 19) !== parsed[0].slice(0, 19))
    throw invalidCursor(q.cursor);
  if (parsed.length === 3 && parsed[2] !== fingerprint(q))
    throw new WeftError(
      'invalid_cursor',
      `cursor "${q.cursor.slice(0, 40)}" was issued for another listing (another environment, workflowId, status, createdFrom/createdTo or runId filter); a cursor only continues the listing that returned it. Repeat that listing's filters with it, or omit the cursor for the first page of this one.`,
    );
  return { us: isoToMicros(parsed[0]), id: parsed[1] };
}

// ── ClickHouse ──

interface ChRun {
  id: string;
  environment_id: string;
  workflow_id: string;
  version_id: string;
  status: string;
  trigger_kind: string;
  trigger_ref: string | null;
  input_dataclip_id: string | null;
  final_dataclip_id: string | null;
  save_dataclips: number;
  idempotency_key: string | null;
  rerun_of: string | null;
  rerun_from_step: string | null;
  parent_run_id: string | null;
  error: string | null;
  created_us: string;
  started_us: string | null;
  finished_us: string | null;
  updated_us: string;
}

function chRunToRecord(r: ChRun): RunRecord {
  const ts = (v: string | null) => (v === null ? null : microsToIso(Number(v)));
  return {
    id: r.id,
    environmentId: r.environment_id,
    workflowId: r.workflow_id,
    versionId: r.version_id,
    status: r.status as RunStatus,
    trigger: { kind: r.trigger_kind as TriggerKind, ref: r.trigger_ref },
    inputDataclipId: r.input_dataclip_id,
    finalDataclipId: r.final_dataclip_id,
    saveDataclips: r.save_dataclips === 1,
    idempotencyKey: r.idempotency_key,
    rerunOf: r.rerun_of,
    rerunFromStep: r.rerun_from_step,
    parentRunId: r.parent_run_id,
    error: r.error === null ? null : (JSON.parse(r.error) as RunRecord['error']),
    createdAt: microsToIso(Number(r.created_us)),
    startedAt: ts(r.started_us),
    finishedAt: ts(r.finished_us),
    updatedAt: microsToIso(Number(r.updated_us)),
  };
}

/** `p50_us, p95_us, p99_us` of a sorted array expression `s` of length `n` (nearest rank). */
const chPercentiles = (s: string, n: string) =>
  PERCENTILES.map((p) => `arrayElement(${s}, intDiv(${p} * ${n} + 99, 100)) AS p${p}_us`).join(
    ', ',
  );

interface ChPercentileRow {
  n: string;
  p50_us: string | null;
  p95_us: string | null;
  p99_us: string | null;
}
const chToPercentiles = (r: ChPercentileRow): Percentiles => ({
  count: Number(r.n),
  p50Ms: r.p50_us === null ? null : Number(r.p50_us) / 1000,
  p95Ms: r.p95_us === null ? null : Number(r.p95_us) / 1000,
  p99Ms: r.p99_us === null ? null : Number(r.p99_us) / 1000,
});

export class ClickhouseRunAnalytics implements RunAnalytics {
  readonly source = 'clickhouse' as const;
  constructor(private readonly ch: Clickhouse) {}

  private get db(): string {
    return this.ch.database;
  }

  private where(q: MetricsQuery, created = 'created_us'): string {
    const w = [`environment_id = ${quoteString(q.environmentId)}`, 'deleted = 0'];
    if (q.workflowId) w.push(`workflow_id = ${quoteString(q.workflowId)}`);
    if (q.from) w.push(`${created} >= ${quoteInt(isoToMicros(q.from))}`);
    if (q.to) w.push(`${created} < ${quoteInt(isoToMicros(q.to))}`);
    return w.join(' AND ');
  }

  /**
   * One query: the sorting key (environment_id, created_us, id) is the list's order, so
   * ClickHouse reads only the environment's granules in the time range; FINAL collapses versions.
   */
  async listRuns(q: ListRunsQuery): Promise<{ data: RunRecord[]; nextCursor: string | null }> {
    const cursor = decodeCursor(q);
    const w = [
      this.where({
        environmentId: q.environmentId,
        ...opt('workflowId', q.workflowId),
        ...opt('from', q.createdFrom),
        ...opt('to', q.createdTo),
      }),
    ];
    if (q.statuses && q.statuses.length > 0)
      w.push(`status IN ${quoteStringList([...new Set(q.statuses)])}`);
    if (q.runIds) w.push(`id IN ${quoteStringList(q.runIds)}`);
    if (q.locations) {
      if (q.locations.length === 0) return { data: [], nextCursor: null };
      w.push(`location IN ${quoteStringList(q.locations)}`);
    }
    if (cursor)
      w.push(
        `(created_us < ${quoteInt(cursor.us)} OR (created_us = ${quoteInt(cursor.us)} AND id < ${quoteString(cursor.id)}))`,
      );
    const rows = await this.ch.query<ChRun>(
      `SELECT * FROM ${this.db}.runs FINAL WHERE ${w.join(' AND ')} ORDER BY created_us DESC, id DESC LIMIT ${quoteInt(q.limit + 1)}`,
    );
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const nextCursor =
      rows.length > q.limit && last
        ? Buffer.from(
            JSON.stringify([microsToKey(Number(last.created_us)), last.id, fingerprint(q)]),
          ).toString('base64url')
        : null;
    return { data: page.map(chRunToRecord), nextCursor };
  }

  async runsOverTime(q: MetricsQuery & { bucket: Bucket }) {
    const width = quoteInt(BUCKET_US[q.bucket]);
    const rows = await this.ch.query<{ b: string; status: string; n: string }>(
      `SELECT intDiv(created_us, ${width}) * ${width} AS b, status, count() AS n
         FROM ${this.db}.runs FINAL WHERE ${this.where(q)} GROUP BY b, status ORDER BY b, status`,
    );
    return rows.map((r) => ({
      bucketStart: microsToIso(Number(r.b)),
      status: r.status as RunStatus,
      count: Number(r.n),
    }));
  }

  async failureRate(q: MetricsQuery) {
    const rows = await this.ch.query<{ workflow_id: string; finished: string; failed: string }>(
      `SELECT workflow_id, countIf(status IN ('succeeded', 'failed', 'canceled')) AS finished,
              countIf(status = 'failed') AS failed
         FROM ${this.db}.runs FINAL WHERE ${this.where(q)} GROUP BY workflow_id ORDER BY workflow_id`,
    );
    return rows.map((r) => rate(r.workflow_id, Number(r.finished), Number(r.failed)));
  }

  /**
   * Per group: the count and the sorted values (arraySort(groupArray(…)), 18.16 and current), the
   * nearest-rank elements picked from them; the array itself is not returned.
   */
  private async percentiles(
    table: string,
    expr: string,
    filter: string,
    q: MetricsQuery,
    groupBy: string[],
  ): Promise<Array<Record<string, string> & ChPercentileRow>> {
    const g = groupBy.join(', ');
    return this.ch.query(
      `SELECT ${g}, n, ${chPercentiles('s', 'n')}
         FROM (SELECT ${g}, count() AS n, arraySort(groupArray(d)) AS s
                 FROM (SELECT ${g}, ${expr} AS d FROM ${this.db}.${table} FINAL
                        WHERE ${this.where(q)} AND ${filter})
                GROUP BY ${g})
        ORDER BY ${g}`,
    );
  }

  async runDurations(q: MetricsQuery) {
    const rows = await this.percentiles(
      'runs',
      'finished_us - started_us',
      'isNotNull(started_us) AND isNotNull(finished_us)',
      q,
      ['workflow_id'],
    );
    return rows.map((r) => ({ workflowId: r.workflow_id!, ...chToPercentiles(r) }));
  }

  async stepDurations(q: MetricsQuery) {
    const rows = await this.percentiles(
      'step_runs',
      'finished_us - started_us',
      `isNotNull(started_us) AND isNotNull(finished_us) AND isNull(reused_from) AND kind IN ('step', 'router')`,
      q,
      ['workflow_id', 'step_id'],
    );
    return rows.map((r) => ({
      workflowId: r.workflow_id!,
      stepId: r.step_id!,
      ...chToPercentiles(r),
    }));
  }

  async queueWait(q: MetricsQuery) {
    const rows = await this.percentiles(
      'runs',
      'started_us - created_us',
      'isNotNull(started_us)',
      q,
      ['workflow_id'],
    );
    return rows.map((r) => ({ workflowId: r.workflow_id!, ...chToPercentiles(r) }));
  }
}

function opt<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}

function rate(workflowId: string, finished: number, failed: number) {
  return { workflowId, finished, failed, failureRate: finished === 0 ? 0 : failed / finished };
}

// ── PostgreSQL ──

const US = (col: string) => `(extract(epoch from ${col}) * 1000000)::bigint`;

/**
 * The same answers from the run tables of every location. Each query reads one location's
 * runs_env_created / runs_env_workflow_created range (environment, optional workflow, created_at)
 * or step_runs by environment; the values are merged here (grouped counts add up; percentiles
 * need every value, so each location returns its sorted values per group). No index serves a
 * percentile: it reads every matching row, which is why ClickHouse answers these at scale.
 */
export class PostgresRunAnalytics implements RunAnalytics {
  readonly source = 'postgres' as const;
  constructor(private readonly runs: RunStore) {}

  listRuns(q: ListRunsQuery) {
    return this.runs.listRuns(q);
  }

  private where(q: MetricsQuery, params: unknown[], alias = ''): string {
    const a = alias ? `${alias}.` : '';
    params.push(q.environmentId);
    const w = [`${a}environment_id = $${params.length}`];
    if (q.workflowId) {
      params.push(q.workflowId);
      w.push(`${a}workflow_id = $${params.length}`);
    }
    // the same µs instants ClickHouse compares against
    if (q.from) {
      params.push(microsToKey(isoToMicros(q.from)));
      w.push(`${a}created_at >= $${params.length}::timestamptz`);
    }
    if (q.to) {
      params.push(microsToKey(isoToMicros(q.to)));
      w.push(`${a}created_at < $${params.length}::timestamptz`);
    }
    return w.join(' and ');
  }

  private async each<R>(
    sql: (schema: string, params: unknown[]) => string,
    build: (params: unknown[]) => void = () => {},
  ): Promise<R[]> {
    const parts = await Promise.all(
      [...this.runs.locations.values()].map(async (loc: { db: Executor; schema: string }) => {
        const params: unknown[] = [];
        build(params);
        const text = sql(loc.schema, params);
        return (await loc.db.query<R>(text, params)).rows;
      }),
    );
    return parts.flat();
  }

  async runsOverTime(q: MetricsQuery & { bucket: Bucket }) {
    const rows = await this.each<{ b: string; status: string; n: number }>((schema, params) => {
      const where = this.where(q, params);
      params.push(BUCKET_US[q.bucket]);
      const w = `$${params.length}::bigint`;
      return `select (div(${US('created_at')}, ${w}) * ${w})::text as b, status, count(*)::int as n
                from ${schema}.runs where ${where} group by 1, 2`;
    });
    const merged = new Map<string, { b: number; status: string; n: number }>();
    for (const r of rows) {
      const key = `${r.b}\u0000${r.status}`;
      const e = merged.get(key) ?? { b: Number(r.b), status: r.status, n: 0 };
      e.n += Number(r.n);
      merged.set(key, e);
    }
    return [...merged.values()]
      .sort((x, y) => x.b - y.b || (x.status < y.status ? -1 : x.status > y.status ? 1 : 0))
      .map((r) => ({
        bucketStart: microsToIso(r.b),
        status: r.status as RunStatus,
        count: r.n,
      }));
  }

  async failureRate(q: MetricsQuery) {
    const rows = await this.each<{ workflow_id: string; finished: number; failed: number }>(
      (schema, params) =>
        `select workflow_id, count(*) filter (where status in ('succeeded', 'failed', 'canceled'))::int as finished,
                count(*) filter (where status = 'failed')::int as failed
           from ${schema}.runs where ${this.where(q, params)} group by workflow_id`,
    );
    const merged = new Map<string, { finished: number; failed: number }>();
    for (const r of rows) {
      const e = merged.get(r.workflow_id) ?? { finished: 0, failed: 0 };
      e.finished += Number(r.finished);
      e.failed += Number(r.failed);
      merged.set(r.workflow_id, e);
    }
    return [...merged.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([w, e]) => rate(w, e.finished, e.failed));
  }

  /** Sorted values per group from every location, merged, then nearest-rank percentiles. */
  private async percentiles(
    table: string,
    expr: string,
    filter: string,
    q: MetricsQuery,
    groupBy: string[],
  ): Promise<Array<{ key: string[] } & Percentiles>> {
    const rows = await this.each<Record<string, string> & { d: string[] }>(
      (schema, params) =>
        `select ${groupBy.join(', ')}, array_agg((${expr})::text) as d
           from ${schema}.${table} where ${this.where(q, params)} and ${filter}
          group by ${groupBy.join(', ')}`,
    );
    const groups = new Map<string, { key: string[]; values: number[] }>();
    for (const r of rows) {
      const key = groupBy.map((g) => r[g]!);
      const k = key.join('\u0000');
      const e = groups.get(k) ?? { key, values: [] };
      for (const v of r.d) e.values.push(Number(v));
      groups.set(k, e);
    }
    return [...groups.values()]
      .sort((a, b) => {
        for (let i = 0; i < a.key.length; i++)
          if (a.key[i] !== b.key[i]) return a.key[i]! < b.key[i]! ? -1 : 1;
        return 0;
      })
      .map((g) => ({ key: g.key, ...percentilesOf(g.values.sort((x, y) => x - y)) }));
  }

  async runDurations(q: MetricsQuery) {
    const rows = await this.percentiles(
      'runs',
      `${US('finished_at')} - ${US('started_at')}`,
      'started_at is not null and finished_at is not null',
      q,
      ['workflow_id'],
    );
    return rows.map(({ key, ...p }) => ({ workflowId: key[0]!, ...p }));
  }

  async stepDurations(q: MetricsQuery) {
    const rows = await this.percentiles(
      'step_runs',
      `${US('finished_at')} - ${US('started_at')}`,
      `started_at is not null and finished_at is not null and reused_from is null and kind in ('step', 'router')`,
      q,
      ['workflow_id', 'step_id'],
    );
    return rows.map(({ key, ...p }) => ({ workflowId: key[0]!, stepId: key[1]!, ...p }));
  }

  async queueWait(q: MetricsQuery) {
    const rows = await this.percentiles(
      'runs',
      `${US('started_at')} - ${US('created_at')}`,
      'started_at is not null',
      q,
      ['workflow_id'],
    );
    return rows.map(({ key, ...p }) => ({ workflowId: key[0]!, ...p }));
  }
}
