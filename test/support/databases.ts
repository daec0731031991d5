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
    return { backend, executor, url: undefined, stores, close: () => stores.close() };
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
      await db.drop();
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
