/**
 * PostgreSQL plumbing shared by every system under test: one fresh database per system (dropped
 * at the end), a probe that reads server-side costs around a measurement, and a client-side
 * counter of the round trips and transactions every `pg` client in this process sends.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import pg from 'pg';

/**
 * Every copy of `pg` loaded here: the bench's own (bench/node_modules, which graphile-worker and
 * DBOS load too, the bench being a package of its own) and the engine's (the repository root's,
 * which Weft's store loads). The counters patch each, so every system is counted the same way.
 */
function pgClientPrototypes(): object[] {
  const protos = new Set<object>([pg.Client.prototype]);
  try {
    const rootPg = createRequire(new URL('../../package.json', import.meta.url))('pg') as typeof pg;
    protos.add(rootPg.Client.prototype);
  } catch {
    // no root copy (the engine not installed): the bench's copy is the only one
  }
  return [...protos];
}

export function adminUrl(): string {
  return (
    process.env.WEFT_BENCH_PG_URL ??
    process.env.WEFT_TEST_PG_URL ??
    'postgres://postgres@127.0.0.1:5432/postgres'
  );
}

export function databaseUrl(database: string): string {
  const url = new URL(adminUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** Databases this process created and has not dropped yet. */
const undropped = new Set<string>();

/** Create an empty database named `bench_<label>_<random>`; `drop` removes it (forcing sessions out). */
export async function createDatabase(label: string): Promise<BenchDatabase> {
  const name = `bench_${label.replace(/[^a-z0-9]/g, '_')}_${randomBytes(4).toString('hex')}`;
  await withAdmin((c) => c.query(`create database ${name}`));
  undropped.add(name);
  return { name, url: databaseUrl(name), drop: () => dropDatabase(name) };
}

async function dropDatabase(name: string): Promise<void> {
  await withAdmin((c) => c.query(`drop database if exists ${name} with (force)`));
  undropped.delete(name);
}

/** Drop whatever a failed open or close left behind (the shared server must not fill up). */
export async function dropLeftoverDatabases(): Promise<void> {
  for (const name of [...undropped]) await dropDatabase(name).catch(() => {});
}

/**
 * A connection of the harness itself (watchers, pollers): not counted by the wire counter, and its
 * backend is left out of the server CPU (application_name `weft-bench-*`).
 */
export async function connectHarnessClient(url: string, name: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: `weft-bench-${name}` });
  ignoredClients.add(client);
  await client.connect();
  return client;
}

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: adminUrl(),
    application_name: 'weft-bench-admin',
  });
  ignoredClients.add(client);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Run one statement as the admin user on the admin database (e.g. `alter database … set …`). */
export async function adminQuery(sql: string): Promise<void> {
  await withAdmin((c) => c.query(sql));
}

/**
 * Server facts printed with every run (fsync and synchronous_commit decide what a commit costs;
 * autovacuum decides whether the tables have statistics mid-run, which changes plans: the shared
 * cluster of the bench machine runs with it off, production with it on).
 */
export async function serverFacts(): Promise<Record<string, string>> {
  return withAdmin(async (c) => {
    const rows = await c.query<{
      version: string;
      fsync: string;
      sync: string;
      wal_sync: string;
      sb: string;
      autovacuum: string;
    }>(
      `select current_setting('server_version') as version, current_setting('fsync') as fsync,
              current_setting('synchronous_commit') as sync, current_setting('wal_sync_method') as wal_sync,
              current_setting('shared_buffers') as sb, current_setting('autovacuum') as autovacuum`,
    );
    const r = rows.rows[0]!;
    return {
      version: r.version,
      fsync: r.fsync,
      synchronous_commit: r.sync,
      wal_sync_method: r.wal_sync,
      shared_buffers: r.sb,
      autovacuum: r.autovacuum,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Client-side counting: every round trip a `pg` client of this process sends.

const ignoredClients = new WeakSet<object>();
const inTransaction = new WeakMap<object, boolean>();

export interface WireCounts {
  /** Statements sent (each one a network round trip; `pg` never pipelines). */
  roundTrips: number;
  /** Transactions ended: explicit commit/rollback, plus every statement sent outside `begin`. */
  transactions: number;
}

const counts: WireCounts = { roundTrips: 0, transactions: 0 };
let installed = false;

/**
 * Patch `pg.Client.prototype.query` (of every copy of `pg`, see pgClientPrototypes) to count what
 * goes over the wire. Cost: a regex on the statement text, the same for
 * every system.
 */
export function installWireCounter(): { read(): WireCounts; reset(): void } {
  if (!installed) {
    installed = true;
    for (const p of pgClientPrototypes()) patchQuery(p);
  }
  return {
    read: () => ({ ...counts }),
    reset: () => {
      counts.roundTrips = 0;
      counts.transactions = 0;
    },
  };
}

function patchQuery(prototype: object): void {
  const proto = prototype as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: object, ...args: unknown[]) {
    if (!ignoredClients.has(this)) {
      const first = args[0];
      const text =
        typeof first === 'string'
          ? first
          : first !== null && typeof first === 'object' && 'text' in first
            ? String((first as { text: unknown }).text)
            : '';
      counts.roundTrips++;
      if (/^\s*(begin|start\s+transaction)\b/i.test(text)) {
        inTransaction.set(this, true);
      } else if (/^\s*(commit|end|rollback|abort)\b/i.test(text)) {
        inTransaction.set(this, false);
        counts.transactions++;
      } else if (!inTransaction.get(this)) {
        counts.transactions++;
      }
    }
    return original.apply(this, args);
  };
}

// ---------------------------------------------------------------------------------------------
// Statement timings from auto_explain, delivered as NOTICEs (so nothing lands in the server log).

export interface StatementTiming {
  statement: string;
  calls: number;
  totalMs: number;
}

const statementTimings = new Map<string, StatementTiming>();
let noticesInstalled = false;

/**
 * Collect `auto_explain` notices from every `pg` client of this process: duration per statement
 * text (nested PL/pgSQL statements included, so a function's line and its statements' lines
 * overlap). Must be installed before the clients connect.
 */
export function installStatementTimings(): { read(): StatementTiming[] } {
  if (!noticesInstalled) {
    noticesInstalled = true;
    for (const p of pgClientPrototypes()) patchNotices(p);
  }
  return { read: () => [...statementTimings.values()].sort((a, b) => b.totalMs - a.totalMs) };
}

function patchNotices(prototype: object): void {
  {
    const proto = prototype as { _handleNotice: (msg: { message?: string }) => void };
    const original = proto._handleNotice;
    proto._handleNotice = function (this: unknown, msg: { message?: string }) {
      const m = /^duration: ([\d.]+) ms\s+plan:\s*([\s\S]*)$/.exec(msg.message ?? '');
      if (!m) return original.call(this, msg);
      let text = '(unparsed)';
      try {
        const plan = JSON.parse(m[2]!) as { 'Query Text'?: string };
        text = (plan['Query Text'] ?? text).replace(/\s+/g, ' ').trim().slice(0, 160);
      } catch {
        // keep '(unparsed)'
      }
      const entry = statementTimings.get(text) ?? { statement: text, calls: 0, totalMs: 0 };
      entry.calls++;
      entry.totalMs += Number(m[1]);
      statementTimings.set(text, entry);
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Server-side probe: CPU of the backends serving one database, and transaction ids assigned.

export interface ServerSnapshot {
  /** On-CPU nanoseconds per backend pid of the database (from /proc/<pid>/schedstat). */
  cpuNs: Map<number, number>;
  /** Next transaction id to be assigned, cluster-wide. */
  nextXid: bigint;
}

export class ServerProbe {
  private constructor(
    private readonly client: pg.Client,
    private readonly database: string,
  ) {}

  static async open(database: string): Promise<ServerProbe> {
    const client = new pg.Client({
      connectionString: adminUrl(),
      application_name: 'weft-bench-probe',
    });
    ignoredClients.add(client);
    await client.connect();
    return new ServerProbe(client, database);
  }

  /**
   * Neither query takes a transaction id (pg_current_snapshot does not assign one), so the xid
   * delta between two snapshots counts the write transactions of everything on the server in
   * between: the system under test, plus anything else that ran on this PostgreSQL meanwhile.
   */
  async snapshot(): Promise<ServerSnapshot> {
    const rows = await this.client.query<{ pids: number[] | null; xid: string }>(
      `select (select array_agg(pid) from pg_stat_activity where datname = $1 and application_name not like 'weft-bench-%') as pids,
              pg_snapshot_xmax(pg_current_snapshot())::text as xid`,
      [this.database],
    );
    const row = rows.rows[0]!;
    const cpuNs = new Map<number, number>();
    await Promise.all(
      (row.pids ?? []).map(async (pid) => {
        const ns = await readSchedCpuNs(pid);
        if (ns !== undefined) cpuNs.set(pid, ns);
      }),
    );
    return { cpuNs, nextXid: BigInt(row.xid) };
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => {});
  }
}

/**
 * Backend CPU consumed between two snapshots (a backend born in between counts from zero), or
 * undefined when no backend could be read (the server is not on this machine).
 */
export function serverCpuMs(before: ServerSnapshot, after: ServerSnapshot): number | undefined {
  if (after.cpuNs.size === 0) return undefined;
  let ns = 0;
  for (const [pid, end] of after.cpuNs) ns += end - (before.cpuNs.get(pid) ?? 0);
  return ns / 1e6;
}

async function readSchedCpuNs(pid: number): Promise<number | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/schedstat`, 'utf8');
    return Number(text.split(' ')[0]);
  } catch {
    return undefined; // not on this machine's /proc (remote server) or the backend exited
  }
}
