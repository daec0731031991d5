/**
 * The ClickHouse connection of the analytics mirror, over the official `@clickhouse/client`
 * (HTTP). The package is an optional dependency, loaded on first use: an embedder that never
 * configures ClickHouse never loads it, and one that configures it without the package gets an
 * error naming the package to install.
 *
 * What of the client Weft uses works on ClickHouse 18.16 (Debian's) and current servers: `query`
 * with `format: 'JSONEachRow'`, `insert` of JSONEachRow rows, `command`. Not used: `query_params`
 * (server-side parameters do not exist on 18.16; values are quoted by clickhouse-sql.ts).
 */
import { WeftError } from '../core/errors.js';
import { mirrorDdl } from './mirror-tables.js';
import { quoteIdentifier } from './clickhouse-sql.js';

export interface ClickhouseConfig {
  /** `http://user:password@host:8123` (HTTP interface). */
  url: string;
  /** Database of the mirror tables. Default `weft`. */
  database?: string;
  /** Per-request timeout. Default 30 s. */
  requestTimeoutMs?: number;
}

/** The small surface of the client Weft needs (described structurally; no driver types leak). */
interface ClientLike {
  query(params: { query: string; format: 'JSONEachRow' }): Promise<{ json<T>(): Promise<T[]> }>;
  insert(params: { table: string; values: unknown[]; format: 'JSONEachRow' }): Promise<unknown>;
  command(params: { query: string }): Promise<unknown>;
  close(): Promise<void>;
}

export class Clickhouse {
  private constructor(
    private readonly client: ClientLike,
    readonly database: string,
    readonly url: string,
  ) {}

  static async connect(config: ClickhouseConfig): Promise<Clickhouse> {
    let mod: { createClient(options: Record<string, unknown>): ClientLike };
    try {
      mod = (await import('@clickhouse/client')) as unknown as typeof mod;
    } catch (error) {
      throw new WeftError(
        'invalid_config',
        `ClickHouse is configured (WEFT_CLICKHOUSE_URL) but the package "@clickhouse/client" is not installed: run \`npm install @clickhouse/client\`, or unset WEFT_CLICKHOUSE_URL to answer everything from PostgreSQL.`,
        { cause: error },
      );
    }
    const database = quoteIdentifier(config.database ?? 'weft');
    const url = new URL(config.url);
    const username = decodeURIComponent(url.username) || 'default';
    const password = decodeURIComponent(url.password);
    url.username = '';
    url.password = '';
    const client = mod.createClient({
      url: url.toString().replace(/\/$/, ''),
      username,
      password,
      request_timeout: config.requestTimeoutMs ?? 30_000,
      // 18.16 knows neither of the settings newer clients send by default for these.
      compression: { request: false, response: false },
      // failures reach the caller (and its logger) as rejections; the client's own console
      // logging would print each of them a second time
      log: { level: 127 },
    });
    return new Clickhouse(client, database, url.host);
  }

  /** Create the database and tables unless they exist. */
  async ensureSchema(): Promise<void> {
    for (const ddl of mirrorDdl(this.database)) await this.client.command({ query: ddl });
  }

  async query<T>(sql: string): Promise<T[]> {
    const result = await this.client.query({ query: sql, format: 'JSONEachRow' });
    return result.json<T>();
  }

  async command(sql: string): Promise<void> {
    await this.client.command({ query: sql });
  }

  /** One INSERT … FORMAT JSONEachRow: ClickHouse accepts it whole or not at all (one block). */
  async insert(table: string, rows: Record<string, unknown>[]): Promise<void> {
    if (rows.length === 0) return;
    await this.client.insert({
      table: `${this.database}.${quoteIdentifier(table)}`,
      values: rows,
      format: 'JSONEachRow',
    });
  }

  /** The server's version (`SELECT version()`). */
  async version(): Promise<string> {
    const rows = await this.query<{ v: string }>('SELECT version() AS v');
    return rows[0]?.v ?? 'unknown';
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
