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

  it("a long run's final state is found with a probe per step, not a walk of the run per step", async () => {
    // finish_run looks for the leaves (succeeded steps none of whose successors ran). Planned as
    // a join, that test read every step run of the run once per succeeded step: a 3,000-step
    // chain read 222,000 buffers and took 1.1 s in its last commit (location/finish_run.sql).
    const compiled = compileWorkflow(defineWorkflow('long').step('a', () => 1));
    const { environmentId } = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'long',
    });
    const { versionId } = await db.stores.control.registerWorkflow(environmentId, compiled);
    const { run } = await db.stores.runs.createRun({
      environmentId,
      workflowId: 'long',
      versionId,
      graph: compiled.graph,
      inputText: '0',
      inputBytes: 1,
      saveDataclips: true,
      trigger: { kind: 'api' },
    });
    const steps = 2_000;
    // The run's rows as a finished 2,000-step chain s0 → … → s1999 would leave them (the one
    // step of the workflow is dropped: the chain replaces it).
    await session.query(`delete from ${LOC}.step_runs where run_id = $1`, [run.id]);
    await session.query(
      `insert into ${LOC}.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, status,
                                    parents, successors, max_attempts, output_dataclip_id)
       select 'sr_a0long' || lpad(i::text, 22, '0'), $1, $2, 'long', 's' || i, 's' || i, 'succeeded',
              case when i = 0 then '{}'::text[] else array['s' || (i - 1)] end,
              case when i = $3::int - 1 then '{}'::text[] else array['s' || (i + 1)] end, 1,
              'dc_a0long' || i
         from generate_series(0, $3::int - 1) i`,
      [run.id, environmentId, steps],
    );
    await session.query('begin');
    try {
      const buffers = await buffersOf(session, `select ${LOC}.finish_run($1, 'succeeded', null)`, [
        run.id,
      ]);
      const [final] = await session.query<{ final_dataclip_id: string }>(
        `select final_dataclip_id from ${LOC}.runs where id = $1`,
        [run.id],
      );
      expect(final!.final_dataclip_id, 'the one leaf, s1999, is the final state').toBe(
        `dc_a0long${steps - 1}`,
      );
      // a probe per step (its row, its successor's row: a few buffers each); the walk read
      // 193,000–196,000 here, on both databases
      expect(buffers, `finish_run of a ${steps}-step chain read ${buffers} buffers`).toBeLessThan(
        steps * 8,
      );
    } finally {
      await session.query('rollback');
    }
  });
});
