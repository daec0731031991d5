/**
 * What the one-off bench scripts (chain-in-server, fanout-phases, growth, trigger-http) start
 * from: a fresh PostgreSQL database, Weft's migrations applied on it, and the default
 * environment. The caller drops it (`db.drop()`) after closing the executor.
 */
import { ensureEnvironment } from '../../src/engine/tenant.js';
import type { Executor } from '../../src/store/executor.js';
import { createStores, openExecutor, type Stores } from '../../src/store/stores.js';
import { createDatabase, type BenchDatabase } from './postgres.js';

export interface WeftDatabase {
  db: BenchDatabase;
  executor: Executor;
  stores: Stores;
  environmentId: string;
}

export async function openWeftDatabase(
  label: string,
  options: { poolSize?: number; applicationName?: string } = {},
): Promise<WeftDatabase> {
  const db = await createDatabase(label);
  const executor = await openExecutor(db.url, {
    poolSize: options.poolSize ?? 10,
    applicationName: options.applicationName ?? 'weft',
  });
  const stores = createStores({ control: executor });
  await stores.migrate();
  const environmentId = await ensureEnvironment(stores.control);
  return { db, executor, stores, environmentId };
}
