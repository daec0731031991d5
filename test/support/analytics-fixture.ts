/**
 * What the analytics tests share: a throwaway PostgreSQL cluster with wal_level = logical (never
 * the shared one), a throwaway ClickHouse server, one run-ops database with two locations (a0, b1)
 * and an engine writing into each (two stores over the same database, each minting into its own
 * default location).
 */
import { Engine } from '../../src/engine/engine.js';
import { cutoverOrganization } from '../../src/engine/cutover.js';
import { silentLogger } from '../../src/engine/logger.js';
import type { AnyWorkflow } from '../../src/engine/registry.js';
import { Clickhouse } from '../../src/analytics/clickhouse.js';
import { createPgExecutor } from '../../src/store/pg-executor.js';
import { createStores, type Stores } from '../../src/store/stores.js';
import type { Executor } from '../../src/store/executor.js';
import { ThrowawayClickhouse } from './throwaway-clickhouse.js';
import { ThrowawayCluster } from './throwaway-cluster.js';

export const LOCATIONS = ['a0', 'b1'] as const;

export interface AnalyticsFixture {
  cluster: ThrowawayCluster;
  clickhouseServer: ThrowawayClickhouse;
  clickhouse: Clickhouse;
  url: string;
  executor: Executor;
  /** stores[0] mints into a0, stores[1] into b1; both see both locations. */
  stores: [Stores, Stores];
  engines: [Engine, Engine];
  environmentId: string;
  source: { url: string; locations: Array<{ tag: string; schema: string }> };
  close(): Promise<void>;
}

export async function openAnalyticsFixture(
  workflows: readonly AnyWorkflow[],
  options: { worker?: boolean } = {},
): Promise<AnalyticsFixture> {
  const [cluster, clickhouseServer] = await Promise.all([
    ThrowawayCluster.create({ settings: ['wal_level = logical', 'max_replication_slots = 10'] }),
    ThrowawayClickhouse.create(),
  ]);
  const url = await cluster.createDatabase('weft_analytics');
  const executor = createPgExecutor({ connectionString: url, max: 10 });
  const executorB = createPgExecutor({ connectionString: url, max: 10 });
  const storesA = createStores({ control: executor, locationTags: [...LOCATIONS] });
  const storesB = createStores({
    control: executorB,
    locationTags: [...LOCATIONS],
    defaultLocationTag: 'b1',
  });
  await storesA.migrate();
  const { environmentId, organizationId } = await storesA.control.createTenant(
    { organization: 'org-a', project: 'prj-a', environment: 'test' },
    { saveDataclips: true },
  );
  // The organization's location history names both locations (what a cutover to b1 and back
  // leaves), so the runs list reads both; with no location flag, each engine mints into its
  // stores' default location.
  await cutoverOrganization(storesA, organizationId, 'b1');
  await cutoverOrganization(storesA, organizationId, null);
  const engine = (stores: Stores) =>
    Engine.start({
      stores,
      environmentId,
      timerIntervalMs: 50,
      workflows,
      logger: silentLogger(),
      reaperIntervalMs: false,
      worker: options.worker === false ? false : { pollIntervalMs: 50, concurrency: 8 },
    });
  const engines: [Engine, Engine] = [await engine(storesA), await engine(storesB)];
  const clickhouse = await Clickhouse.connect({ url: clickhouseServer.url, database: 'weft' });
  return {
    cluster,
    clickhouseServer,
    clickhouse,
    url,
    executor,
    stores: [storesA, storesB],
    engines,
    environmentId,
    source: { url, locations: LOCATIONS.map((tag) => ({ tag, schema: `weft_loc_${tag}` })) },
    async close() {
      for (const e of engines) await e.stop().catch(() => {});
      await storesA.close().catch(() => {});
      await storesB.close().catch(() => {});
      await clickhouse.close().catch(() => {});
      await clickhouseServer.destroy();
      await cluster.destroy();
    },
  };
}
