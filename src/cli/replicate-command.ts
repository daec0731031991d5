/**
 * `weft replicate`: the analytics mirror's replicator (src/analytics/replicator.ts), one per
 * run-ops database of the configured locations (WEFT_LOCATIONS; home = RUN_OPS_DATABASE_URL, else
 * DATABASE_URL), into ClickHouse (WEFT_CLICKHOUSE_URL, WEFT_CLICKHOUSE_DATABASE). SIGTERM stops it;
 * what was not acknowledged is streamed again at the next start. `weft replicate status` prints the
 * slot and ClickHouse positions and the lag of each database. `weft server --replicate` runs the
 * same replicators inside the server. docs/analytics.md.
 */
import { Clickhouse } from '../analytics/clickhouse.js';
import { quoteString } from '../analytics/clickhouse-sql.js';
import { MIRROR_TABLES } from '../analytics/mirror-tables.js';
import { Replicator, slotName, type ReplicationSource } from '../analytics/replicator.js';
import { WeftError } from '../core/errors.js';
import { createLogger, type Logger } from '../engine/logger.js';
import { processMetrics } from '../engine/metrics.js';
import { createMetricsApp } from '../server/routes/metrics.js';
import { startServer } from '../server/serve.js';
import { parseLocationsEnv } from '../store/locations.js';
import { openExecutor } from '../store/stores.js';
import { assertSplitAtBoot, openStores, redactUrl, serverDatabase } from './database.js';
import { CliError } from './output.js';

export interface ReplicateCommandOptions {
  databaseUrl?: string;
  clickhouseUrl?: string;
  rebuild?: boolean;
  metricsPort?: string;
  batchRows?: string;
  json?: boolean;
}

/** Every run-ops database and its locations, from the same settings every process reads. */
export function replicationSources(databaseUrl: string | undefined): ReplicationSource[] {
  const target = serverDatabase(databaseUrl, 'replicate');
  if (target.kind !== 'url' || !/^postgres(ql)?:\/\//.test(target.url))
    throw new CliError(
      'weft replicate streams from PostgreSQL by logical replication: set DATABASE_URL to a postgres:// URL (PGlite has no replication).',
    );
  const home = target.runOpsUrl ?? target.url;
  const byUrl = new Map<string, ReplicationSource>();
  for (const spec of parseLocationsEnv()) {
    const url = spec.url ?? home;
    const source = byUrl.get(url) ?? { url, locations: [] };
    source.locations.push({ tag: spec.tag, schema: `weft_loc_${spec.tag}` });
    byUrl.set(url, source);
  }
  return [...byUrl.values()];
}

export function clickhouseSettings(option: string | undefined): {
  url: string;
  database: string;
} {
  const url = option ?? process.env.WEFT_CLICKHOUSE_URL;
  if (!url)
    throw new CliError(
      'the analytics mirror needs ClickHouse: set WEFT_CLICKHOUSE_URL (e.g. http://default:password@clickhouse:8123) or pass --clickhouse-url. docs/analytics.md.',
    );
  if (!/^https?:\/\//.test(url))
    throw new CliError(
      `WEFT_CLICKHOUSE_URL must be ClickHouse's HTTP interface (http:// or https://, port 8123 by default); found "${redactUrl(url)}".`,
    );
  return { url, database: process.env.WEFT_CLICKHOUSE_DATABASE || 'weft' };
}

/**
 * Start one replicator per run-ops database (setup first: wal_level, publication, slot, first
 * copy). Resolves once all stream; `done` settles when one stops for good (a fatal error).
 */
export async function startReplicators(
  sources: ReplicationSource[],
  clickhouse: Clickhouse,
  logger: Logger,
  options: { rebuild?: boolean; batchRows?: number } = {},
): Promise<{ replicators: Replicator[]; done: Promise<void>; stop(): Promise<void> }> {
  const replicators: Replicator[] = [];
  try {
    for (const source of sources) {
      const r = new Replicator({
        clickhouse,
        source,
        logger,
        registry: processMetrics,
        ...(options.rebuild ? { rebuild: true } : {}),
        ...(options.batchRows ? { batchRows: options.batchRows } : {}),
      });
      replicators.push(r);
      await r.setup();
      logger.info(
        { source: redactUrl(source.url), locations: source.locations.map((l) => l.tag) },
        'analytics: replicating',
      );
    }
  } catch (error) {
    await Promise.all(replicators.map((r) => r.stop().catch(() => {})));
    throw error;
  }
  const done = Promise.all(replicators.map((r) => r.run())).then(() => undefined);
  return {
    replicators,
    done,
    async stop() {
      await Promise.all(replicators.map((r) => r.stop()));
      await done.catch(() => {});
    },
  };
}

/**
 * Split mode (RUN_OPS_DATABASE_URL, or locations with URLs): the distinct-database sentinel, as
 * in every process (src/store/split.ts); nothing with the split off. Opens the stores only for it.
 */
async function assertSplitSafeForReplicate(databaseUrl: string | undefined): Promise<void> {
  const opened = await openStores(serverDatabase(databaseUrl, 'replicate'), {
    applicationName: 'weft-replicate',
    poolSize: 1,
  });
  try {
    await assertSplitAtBoot(opened.stores, { liveEvents: false });
  } finally {
    await opened.close();
  }
}

export async function runReplicate(
  what: string | undefined,
  options: ReplicateCommandOptions,
): Promise<void> {
  if (what === 'status') return runReplicateStatus(options);
  if (what !== undefined)
    throw new CliError(
      `weft replicate ${what}: unknown; use \`weft replicate\` or \`weft replicate status\`.`,
    );
  const logger = createLogger({ name: 'weft-replicate' });
  const sources = replicationSources(options.databaseUrl);
  await assertSplitSafeForReplicate(options.databaseUrl);
  const settings = clickhouseSettings(options.clickhouseUrl);
  const clickhouse = await Clickhouse.connect(settings);
  const batchRows = options.batchRows ? Number(options.batchRows) : undefined;
  if (batchRows !== undefined && !(Number.isInteger(batchRows) && batchRows > 0))
    throw new CliError(`--batch-rows must be a positive integer; found "${options.batchRows}".`);
  const running = await startReplicators(sources, clickhouse, logger, {
    ...(options.rebuild ? { rebuild: true } : {}),
    ...(batchRows ? { batchRows } : {}),
  });
  const port = options.metricsPort ?? process.env.WEFT_REPLICATE_METRICS_PORT;
  const metricsServer =
    port === undefined
      ? undefined
      : await startServer(createMetricsApp(processMetrics), {
          port: Number(port),
          hostname: process.env.WEFT_REPLICATE_METRICS_HOST ?? '127.0.0.1',
        });
  if (metricsServer) logger.info({ url: `${metricsServer.url}/metrics` }, 'serving metrics');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    // Nothing is acknowledged before ClickHouse accepted it, so cutting a slow stop short loses
    // nothing (the rest streams again at the next start); a supervisor's SIGKILL would be rougher.
    setTimeout(() => {
      logger.warn(
        'analytics: stopping took over 10 s; exiting now (nothing unacknowledged is lost)',
      );
      process.exit(0);
    }, 10_000).unref();
    logger.info(
      { signal },
      'analytics: stopping (unacknowledged changes stream again at the next start)',
    );
    await metricsServer?.close();
    await running.stop();
    await clickhouse.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  try {
    await running.done;
  } catch (error) {
    await metricsServer?.close().catch(() => {});
    await running.stop().catch(() => {});
    await clickhouse.close().catch(() => {});
    if (error instanceof WeftError) throw new CliError(error.message);
    throw error;
  }
}

interface SourceStatus {
  database: string;
  locations: string[];
  slot: string;
  slotExists: boolean;
  slotActive: boolean | null;
  walStatus: string | null;
  confirmedLsn: string | null;
  lagBytes: number | null;
  clickhouseLsn: string | null;
  lastCommitAt: string | null;
  lastWriteAt: string | null;
  lagSeconds: number | null;
  rows: Record<string, number>;
}

/** `weft replicate status`: one line per run-ops database; exit 1 when a slot is missing or lost. */
async function runReplicateStatus(options: ReplicateCommandOptions): Promise<void> {
  const sources = replicationSources(options.databaseUrl);
  const clickhouse = await Clickhouse.connect(clickhouseSettings(options.clickhouseUrl));
  const out: SourceStatus[] = [];
  try {
    for (const source of sources) {
      const db = await openExecutor(source.url, {
        poolSize: 1,
        applicationName: 'weft-replicate-status',
      });
      try {
        const id = (
          await db.query<{ sys: string; db: string; lsn: string }>(
            `select (select system_identifier::text from pg_control_system()) as sys, current_database() as db, pg_current_wal_lsn()::text as lsn`,
          )
        ).rows[0]!;
        const slot = slotName('weft', id.db);
        const s = (
          await db.query<{
            active: boolean;
            wal_status: string | null;
            confirmed: string | null;
            lag: string | null;
          }>(
            `select active, wal_status, confirmed_flush_lsn::text as confirmed,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text as lag
               from pg_replication_slots where slot_name = $1`,
            [slot],
          )
        ).rows[0];
        const progress = (
          await clickhouse.query<{
            max_lsn: string;
            last_commit: string;
            last_write: string;
            n: string;
          }>(
            // aliases unlike the column names: 18.16 resolves an alias inside the aggregates
            `SELECT toString(max(lsn)) AS max_lsn, toString(argMax(commit_us, lsn)) AS last_commit,
                    toString(max(written_us)) AS last_write, toString(count()) AS n
               FROM ${clickhouse.database}.replication_progress WHERE source = ${quoteString(`${id.sys}/${id.db}`)}`,
          )
        )[0];
        const tags = source.locations.map((l) => quoteString(l.tag)).join(', ');
        const rows: Record<string, number> = {};
        for (const t of MIRROR_TABLES) {
          const r = await clickhouse.query<{ n: string }>(
            `SELECT toString(count()) AS n FROM ${clickhouse.database}.${t.name} FINAL WHERE deleted = 0 AND location IN (${tags})`,
          );
          rows[t.name] = Number(r[0]?.n ?? 0);
        }
        const has = progress && progress.n !== '0';
        const commitUs = has ? Number(progress.last_commit) : 0;
        const caughtUp = s?.lag !== undefined && s.lag !== null && Number(s.lag) === 0;
        out.push({
          database: redactUrl(source.url),
          locations: source.locations.map((l) => l.tag),
          slot,
          slotExists: s !== undefined,
          slotActive: s?.active ?? null,
          walStatus: s?.wal_status ?? null,
          confirmedLsn: s?.confirmed ?? null,
          lagBytes: s?.lag == null ? null : Number(s.lag),
          clickhouseLsn: has ? lsnText(BigInt(progress.max_lsn)) : null,
          lastCommitAt: commitUs > 0 ? new Date(commitUs / 1000).toISOString() : null,
          lastWriteAt: has ? new Date(Number(progress.last_write) / 1000).toISOString() : null,
          // caught up: 0; else the age of the last commit ClickHouse holds (an upper bound)
          lagSeconds: caughtUp ? 0 : commitUs > 0 ? (Date.now() - commitUs / 1000) / 1000 : null,
          rows,
        });
      } finally {
        await db.close();
      }
    }
  } finally {
    await clickhouse.close();
  }
  if (options.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  else
    for (const s of out)
      process.stdout.write(
        [
          `${s.database} (locations ${s.locations.join(', ')})`,
          `  slot ${s.slot}: ${s.slotExists ? `${s.slotActive ? 'streaming' : 'not streaming (is weft replicate running?)'}, wal_status ${s.walStatus}, confirmed ${s.confirmedLsn}` : 'MISSING — run weft replicate (first start) or weft replicate --rebuild'}`,
          `  lag: ${s.lagBytes ?? '?'} bytes of WAL, ${s.lagSeconds === null ? '?' : s.lagSeconds.toFixed(1)} s; ClickHouse at ${s.clickhouseLsn ?? '(nothing yet)'} (commit ${s.lastCommitAt ?? '-'}, written ${s.lastWriteAt ?? '-'})`,
          `  rows: ${Object.entries(s.rows)
            .map(([t, n]) => `${t} ${n}`)
            .join(', ')}`,
          '',
        ].join('\n'),
      );
  if (out.some((s) => !s.slotExists || s.walStatus === 'lost')) process.exitCode = 1;
}

function lsnText(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}
