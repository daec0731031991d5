/**
 * The hot path's plans hold in a burst (issue 8; src/store/sql/README.md, "By id").
 *
 * PL/pgSQL caches a generic plan per session after a few calls. Made while the tables are small
 * (a fresh database, a quiet spell), it used to walk a partial index (`step_runs_ready`,
 * `step_runs_open`) or the whole table to find rows it could find by key, and the claim read and
 * sorted every ready row to keep a few: once 1,000 runs were ready, each claim and each commit
 * read hundreds of buffers. Here one session claims and commits until its plans are cached, then
 * 1,200 runs become ready at once, and the same session's claim and commit are measured with
 * EXPLAIN (ANALYZE, BUFFERS): they must read what a handful of key probes read, not a walk.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWorkflow } from '../src/core/graph.js';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';

const LOC = 'weft_loc_a0';

interface Session {
  query<R>(sql: string, params?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

/** Blocks one statement touched, from its EXPLAIN (ANALYZE, BUFFERS): nested SQL included. */
async function buffersOf(session: Session, sql: string, params: unknown[]): Promise<number> {
  const rows = await session.query<{ 'QUERY PLAN': unknown }>(
    `explain (analyze, buffers, format json) ${sql}`,
    params,
  );
  const raw = rows[0]!['QUERY PLAN'];
  const plan = (typeof raw === 'string' ? JSON.parse(raw) : raw) as Array<{
    Plan: Record<string, number>;
  }>;
  const top = plan[0]!.Plan;
  return (top['Shared Hit Blocks'] ?? 0) + (top['Shared Read Blocks'] ?? 0);
}

describe.each(BACKENDS)('plans of the hot path in a burst (%s)', (backend) => {
  let db: TestDatabase;
  let session: Session;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
    if (db.url) {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      session = {
        query: async (sql, params) => (await client.query(sql, params)).rows,
        close: () => client.end(),
      };
    } else {
      // PGlite is one session already
      session = {
        query: async <R>(sql: string, params?: unknown[]) =>
          (await db.executor.query<R>(sql, params)).rows,
        close: async () => {},
      };
    }
  });
  afterAll(async () => {
    await session?.close();
    await db?.close();
  });

  it('a claim and a commit read a few key probes with 1,200 runs ready, on plans cached while 10 were', async () => {
    const compiled = compileWorkflow(defineWorkflow('burst').step('a', () => 1));
    const { environmentId } = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'burst',
    });
    const { versionId } = await db.stores.control.registerWorkflow(environmentId, compiled);
    const create = (n: number) =>
      db.stores.runs.createRun({
        environmentId,
        workflowId: 'burst',
        versionId,
        graph: compiled.graph,
        inputText: String(n),
        inputBytes: 1,
        saveDataclips: true,
        trigger: { kind: 'api' },
      });

    const claimSql = `select * from ${LOC}.claim_steps($1, $2, $3, $4, $5)`;
    const claimArgs = (limit: number) => ['w', [environmentId], ['burst'], limit, 60_000];
    const commitSql = `select ${LOC}.complete_step($1, $2, 'w', '1', $3, null, null, '{}', '{}', false, 60000)`;
    type Claim = { step_run_id: string; attempt: number };
    let outputs = 0;
    const commitArgs = (c: Claim) => [c.step_run_id, c.attempt, `dc_a0burst${outputs++}`];

    // Quiet: ten runs, claimed and committed one by one in this session, so that its plans of
    // claim_steps, claim_by_ids and complete_step are cached (generic after five executions).
    for (let i = 0; i < 10; i++) await create(i);
    for (let i = 0; i < 8; i++) {
      const [claim] = await session.query<Claim>(claimSql, claimArgs(1));
      expect(claim, `claim ${i} of the quiet phase`).toBeDefined();
      const [done] = await session.query<{ complete_step: unknown }>(commitSql, commitArgs(claim!));
      expect(JSON.stringify(done!.complete_step)).toContain('committed');
    }
    const quietClaim = await buffersOf(session, claimSql, claimArgs(1));

    // The burst: 1,200 runs ready at once.
    for (let i = 0; i < 1200; i += 50)
      await Promise.all(Array.from({ length: 50 }, (_, j) => create(100 + i + j)));

    const burstClaim = await buffersOf(session, claimSql, claimArgs(1));
    // 600 steps running (a busy worker pool): the commit's fence must not walk them
    expect(await session.query(claimSql, claimArgs(600))).toHaveLength(600);
    const [held] = await session.query<Claim>(
      `select id as step_run_id, attempt_count as attempt from ${LOC}.step_runs
        where lease_owner = 'w' and status = 'running' order by id limit 1`,
    );
    const burstCommit = await buffersOf(session, commitSql, commitArgs(held!));
    const report = `claim of one step: ${quietClaim} buffers with 1 run ready, ${burstClaim} with 1,200; commit with 600 running: ${burstCommit}`;

    // A walk reads a buffer per row it passes (1,200 ready, 600 running); the key probes of one
    // claim (candidate, step run, attempt row, run, input) or one commit read a few tens.
    expect(burstClaim, report).toBeLessThan(quietClaim * 3);
    expect(burstCommit, report).toBeLessThan(100);
    const [ready] = await session.query<{ n: number }>(
      `select count(*)::int as n from ${LOC}.step_runs where status = 'ready'`,
    );
    expect(ready!.n, 'the rest of the burst is still ready').toBeGreaterThan(550);
  });
});
