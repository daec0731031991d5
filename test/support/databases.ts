/**
 * Real databases for tests: each test file gets a fresh PostgreSQL database (created here, dropped
 * after) and a fresh in-memory PGlite. No storage mocks.
 */
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import type { Executor } from '../../src/store/executor.js';
import { createPgExecutor } from '../../src/store/pg-executor.js';
import { createPgliteExecutor } from '../../src/store/pglite-executor.js';
import { createStores, type Stores, type StoresOptions } from '../../src/store/stores.js';
import { ATTEMPT_STATUSES, DATACLIP_KINDS, STEP_RUN_STATUSES } from '../../src/store/rows.js';

export type Backend = 'pglite' | 'postgres';
export const BACKENDS: Backend[] = ['pglite', 'postgres'];

export function adminUrl(): string {
  return process.env.WEFT_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
}

function urlFor(database: string): string {
  const url = new URL(adminUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

/** Create an empty PostgreSQL database; returns its URL and a function that drops it. */
export async function createPgDatabase(
  label = 't',
): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `weft_${label}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  return {
    url: urlFor(name),
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl() });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`).catch(() => {});
      await c.end();
    },
  };
}

export interface TestDatabase {
  backend: Backend;
  executor: Executor;
  /** For PostgreSQL: the URL (child processes connect to it). */
  url: string | undefined;
  stores: Stores;
  close(): Promise<void>;
}

export async function openTestDatabase(
  backend: Backend,
  options: Omit<StoresOptions, 'control'> = {},
): Promise<TestDatabase> {
  if (backend === 'pglite') {
    const executor = await createPgliteExecutor();
    const stores = createStores({ control: executor, ...options });
    await stores.migrate();
    return {
      backend,
      executor,
      url: undefined,
      stores,
      close: async () => {
        // a test that closed its stores itself leaves nothing to read here
        const rows = await closedValues((sql, params) => executor.query(sql, params)).catch(
          (error: unknown) => {
            if (/closed/i.test(String(error))) return [];
            throw error;
          },
        );
        await stores.close();
        failOnClosedValues(rows);
      },
    };
  }
  const db = await createPgDatabase();
  const executor = createPgExecutor({ connectionString: db.url, max: 10 });
  const stores = createStores({ control: executor, ...options });
  await stores.migrate();
  return {
    backend,
    executor,
    url: db.url,
    stores,
    close: async () => {
      await stores.close();
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        failOnClosedValues(await closedValues((sql, params) => c.query(sql, params)));
      } finally {
        await c.end();
        await db.drop();
      }
    },
  };
}

/** The body of a run's final state dataclip, or undefined when it has none (yet). */
export async function finalStateOf(
  db: TestDatabase,
  environmentId: string,
  runId: string,
): Promise<unknown> {
  const run = await db.stores.runs.getRun(environmentId, runId);
  return run?.finalDataclipId
    ? (await db.stores.runs.getDataclip(environmentId, run.finalDataclipId))?.body
    : undefined;
}

type RowsOf = (sql: string, params: unknown[]) => Promise<{ rows: unknown[] }>;
interface StrayValue {
  schema: string;
  col: string;
  value: string | null;
  n: number;
}

/**
 * The columns whose CHECK constraints location 0013 dropped from the hot path (step statuses,
 * attempt statuses, dataclip kinds, …) hold only the values src/store/rows.ts lists: read from
 * every run location of a test database when it closes, so every test of the suite, on both
 * backends, checks what the store's SQL wrote.
 */
async function closedValues(query: RowsOf): Promise<StrayValue[]> {
  const schemas = (
    await query(
      `select table_schema as s from information_schema.tables where table_name = 'step_runs'`,
      [],
    )
  ).rows.map((r) => (r as { s: string }).s);
  const out: StrayValue[] = [];
  for (const schema of schemas) {
    const { rows } = await query(
      `select $4::text as schema, col, value, n::int from (
         select 'step_runs.status' as col, status as value, count(*) as n from "${schema}".step_runs
          where status <> all($1::text[]) group by status
         union all
         select 'step_runs.on_exhausted', on_exhausted, count(*) from "${schema}".step_runs
          where on_exhausted not in ('fail', 'pause') group by on_exhausted
         union all
         select 'step_runs.on_scope_failure', on_scope_failure, count(*) from "${schema}".step_runs
          where on_scope_failure not in ('fail', 'collect') group by on_scope_failure
         union all
         select 'step_runs.max_attempts', max_attempts::text, count(*) from "${schema}".step_runs
          where max_attempts < 1 group by max_attempts
         union all
         select 'attempt_rows.status', status, count(*) from "${schema}".attempt_rows
          where status <> all($2::text[]) group by status
         union all
         select 'attempt_rows.number', number::text, count(*) from "${schema}".attempt_rows
          where number < 1 group by number
         union all
         select 'dataclips.kind', kind, count(*) from "${schema}".dataclips
          where kind <> all($3::text[]) group by kind
       ) t`,
      [STEP_RUN_STATUSES, ATTEMPT_STATUSES, DATACLIP_KINDS, schema],
    );
    out.push(...(rows as StrayValue[]));
  }
  return out;
}

function failOnClosedValues(rows: StrayValue[]): void {
  if (rows.length === 0) return;
  throw new Error(
    `the store wrote values outside the lists of src/store/rows.ts (their CHECK constraints were dropped in location 0013): ${rows
      .map((r) => `${r.schema}.${r.col} = ${JSON.stringify(r.value)} (${r.n} rows)`)
      .join('; ')}`,
  );
}
