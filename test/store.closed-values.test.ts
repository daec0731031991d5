/**
 * Location 0013 dropped the CHECK constraints of the tables a step writes; every test database is
 * checked against src/store/rows.ts's lists when it closes instead (test/support/databases.ts).
 * This shows that check fails on a value outside the lists, on both backends.
 */
import { describe, expect, it } from 'vitest';
import { BACKENDS, openTestDatabase } from './support/databases.js';

describe.each(BACKENDS)('closing a test database on %s', (backend) => {
  it('fails naming a step run status, an attempt status and a dataclip kind outside the lists', async () => {
    const db = await openTestDatabase(backend);
    // no CHECK constraint stops these any more (location 0013)
    await db.executor.query(
      `insert into weft_loc_a0.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, status, max_attempts)
       values ('sr_x', 'run_x', 'env_x', 'wf', 's', 's', 'finished', 1)`,
    );
    await db.executor.query(
      `insert into weft_loc_a0.attempt_rows (step_run_id, number, run_id, worker_id, status, step_key)
       values ('sr_x', 1, 'run_x', 'w', 'done', 's')`,
    );
    await db.executor.query(
      `insert into weft_loc_a0.dataclips (id, run_id, environment_id, kind, body, body_hash, size_bytes)
       values ('dc_x', 'run_x', 'env_x', 'result', 'null', 'h', 4)`,
    );
    const error = await db.close().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain('weft_loc_a0.step_runs.status = "finished" (1 rows)');
    expect(message).toContain('weft_loc_a0.attempt_rows.status = "done" (1 rows)');
    expect(message).toContain('weft_loc_a0.dataclips.kind = "result" (1 rows)');
  });

  it('closes quietly when every value is one of the lists', async () => {
    const db = await openTestDatabase(backend);
    await db.executor.query(
      `insert into weft_loc_a0.step_runs (id, run_id, environment_id, workflow_id, step_id, step_key, status, max_attempts)
       values ('sr_y', 'run_y', 'env_y', 'wf', 's', 's', 'pruned', 1)`,
    );
    await expect(db.close()).resolves.toBeUndefined();
  });
});
