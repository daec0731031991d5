/**
 * The floor under every durable step: a bare one-row insert committed on its own (autocommit,
 * one round trip, one WAL flush on PostgreSQL with fsync on). Per-step costs are expressed in
 * these commits.
 *
 * - chain: sequential commits on one connection (at least 1,000, for a stable figure) → ms/commit.
 * - fanout: as many commits as the fan-out has steps, from 10 connections at once (the pool size
 *   every system here uses) → commits/s, the throughput ceiling group commit gives that pool.
 *   Variant `10conn-notify`: the same commits each also sending a NOTIFY. PostgreSQL serializes
 *   the commits of notifying transactions on one lock (held through the WAL flush, so no group
 *   commit among them); the gap between the two variants is what that costs on this machine.
 * On PGlite the same statements run in process (in-memory database; no fsync).
 */
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { createDatabase, type BenchDatabase } from '../lib/postgres.js';
import type { Backend, Session, SystemTarget, Timed } from './system.js';

const MIN_CHAIN_COMMITS = 1000;
const FANOUT_CONNECTIONS = 10;
const TABLE = `create table commits (id bigint generated always as identity primary key, v integer not null)`;
const INSERT = `insert into commits (v) values ($1)`;
const INSERT_NOTIFY = `with i as (insert into commits (v) values ($1)) select pg_notify('bench_commit', '')`;

export function baselineTarget(backend: Backend): SystemTarget {
  return {
    id: backend === 'postgres' ? 'baseline-pg' : 'baseline-pglite',
    system: 'baseline',
    backend,
    unit: { chain: 'ms/commit', fanout: 'commits/s' },
    // No latency bench: a commit has no step to start.
    variants: (bench) =>
      bench === 'latency'
        ? []
        : bench === 'chain'
          ? [{ name: 'sequential', settings: { connections: 1 } }]
          : [false, true].map((notify) => ({
              name: `${FANOUT_CONNECTIONS}conn${notify ? '-notify' : ''}`,
              settings: { connections: backend === 'postgres' ? FANOUT_CONNECTIONS : 1, notify },
            })),
    open: () => (backend === 'postgres' ? openPg() : openPglite()),
  };
}

type Insert = (v: number) => Promise<unknown>;

/** `total` commits spread over `lanes` sequential loops running at once. */
async function timedCommits(inserts: Insert[], total: number): Promise<Timed> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    inserts.map(async (insert) => {
      while (next < total) await insert(next++);
    }),
  );
  return { wallMs: performance.now() - t0, steps: total };
}

async function openPg(): Promise<Session> {
  const db: BenchDatabase = await createDatabase('baseline');
  const clients = await Promise.all(
    Array.from({ length: FANOUT_CONNECTIONS }, async () => {
      const c = new pg.Client({ connectionString: db.url, application_name: 'baseline' });
      await c.connect();
      return c;
    }),
  );
  await clients[0]!.query(TABLE);
  let statement = INSERT;
  const inserts = clients.map(
    (c): Insert =>
      (v) =>
        c.query(statement, [v]),
  );
  return {
    database: db.name,
    settings: { statement: INSERT },
    async configure(_bench, variant) {
      statement = variant.settings.notify === true ? INSERT_NOTIFY : INSERT;
    },
    chain: (steps) => timedCommits(inserts.slice(0, 1), Math.max(steps, MIN_CHAIN_COMMITS)),
    fanout: (runs, stepsPerRun) => timedCommits(inserts, runs * stepsPerRun),
    async close() {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      await db.drop();
    },
  };
}

async function openPglite(): Promise<Session> {
  const db = new PGlite();
  await db.waitReady;
  await db.exec(TABLE);
  let statement = INSERT;
  const insert: Insert = (v) => db.query(statement, [v]);
  return {
    database: undefined,
    settings: { statement: INSERT, storage: 'memory' },
    async configure(_bench, variant) {
      statement = variant.settings.notify === true ? INSERT_NOTIFY : INSERT;
    },
    chain: (steps) => timedCommits([insert], Math.max(steps, MIN_CHAIN_COMMITS)),
    fanout: (runs, stepsPerRun) =>
      timedCommits(
        Array.from({ length: FANOUT_CONNECTIONS }, () => insert),
        runs * stepsPerRun,
      ),
    async close() {
      await db.close();
    },
  };
}
