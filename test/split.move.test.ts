/**
 * The operator's procedure of docs/operations.md "Split the databases", run as written: an install
 * on one database with finished runs is split (pg_dump / pg_restore of the run schemas into a new
 * database, RUN_OPS_DATABASE_URL set, `weft migrate`, start): its old runs are read and new runs
 * run from the run-ops database. Then rolled back the documented way: every run, old and new, is
 * back on the one database.
 */
import { execFileSync as exec } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from './support/cli-process.js';
import { createPgDatabase } from './support/databases.js';

/** A PostgreSQL client tool, quietly (its output goes to the error only when it fails). */
const run = (tool: string, args: string[]) => exec(tool, args, { stdio: 'pipe' });

const WORKFLOW = `import { defineWorkflow } from 'weft';
export default defineWorkflow<{ n: number }>('inc').step('a', async ({ n }) => n + 1);
`;

describe('splitting an existing install and rolling back, as docs/operations.md says', () => {
  let control: { url: string; drop: () => Promise<void> };
  let ops: { url: string; drop: () => Promise<void> };
  let dir: string;

  beforeAll(async () => {
    control = await createPgDatabase('split_mv_ctl');
    ops = await createPgDatabase('split_mv_ops');
    dir = mkdtempSync(join(tmpdir(), 'weft-split-mv-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'split-mv', type: 'module' }));
    writeFileSync(join(dir, 'inc.ts'), WORKFLOW);
  }, 60_000);
  afterAll(async () => {
    await control?.drop();
    await ops?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** `weft start` (worker + API in one process) on `env`; runs `fn` with its URL; then stops it. */
  async function withStart<T>(env: Record<string, string>, fn: (url: string) => Promise<T>) {
    const p = startCli(
      ['start', '--workflows', './inc.ts', '--environment', 'prod', '--port', '0'],
      {
        cwd: dir,
        env,
      },
    );
    try {
      const url = (
        await p.waitFor('stdout', /"url":"(http:\/\/[^"]+)"[^\n]*server listening/, 60_000)
      )[1]!;
      return await fn(url);
    } finally {
      await p.stop(10_000);
    }
  }
  const runsOf = async (url: string, key: string) =>
    (
      (await (
        await fetch(`${url}/api/v1/runs?limit=100`, { headers: { authorization: `Bearer ${key}` } })
      ).json()) as { data: Array<{ id: string; status: string }> }
    ).data;
  async function runTo(url: string, key: string, n: number): Promise<string> {
    const r = await fetch(`${url}/api/v1/workflows/inc/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { n } }),
    });
    expect(r.status, await r.clone().text()).toBe(201);
    const { id } = (await r.json()) as { id: string };
    for (let i = 0; i < 200; i++) {
      const run = (await (
        await fetch(`${url}/api/v1/runs/${id}`, { headers: { authorization: `Bearer ${key}` } })
      ).json()) as { status: string };
      if (run.status === 'succeeded') return id;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`run ${id} did not succeed`);
  }
  const countRuns = async (url: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const r = await c.query<{ n: string }>(
        `select count(*) as n from pg_tables where schemaname = 'weft_loc_a0' and tablename = 'runs'`,
      );
      if (Number(r.rows[0]!.n) === 0) return 0;
      return Number(
        (await c.query<{ n: string }>(`select count(*) as n from weft_loc_a0.runs`)).rows[0]!.n,
      );
    } finally {
      await c.end();
    }
  };

  it('split: old runs readable, new runs in the run-ops database; roll back: all runs on one database', async () => {
    const one = { DATABASE_URL: control.url };
    expect((await runCli(['migrate'], { cwd: dir, env: one, timeoutMs: 60_000 })).code).toBe(0);
    const made = await runCli(
      ['keys', 'create', '--scope', 'admin', '--environment', 'prod', '--json'],
      {
        cwd: dir,
        env: one,
        timeoutMs: 60_000,
      },
    );
    const key = (JSON.parse(made.stdout) as { key: string }).key;
    const before = await withStart(one, async (url) => [
      await runTo(url, key, 1),
      await runTo(url, key, 2),
    ]);

    // The documented steps 2–4 (processes stopped): copy the run schemas, set the URL, migrate.
    const dump = join(dir, 'run-data.dump');
    run('pg_dump', [
      '--format=custom',
      '--schema=weft_ops',
      '--schema=weft_loc_*',
      `--file=${dump}`,
      control.url,
    ]);
    run('pg_restore', ['--no-owner', `--dbname=${ops.url}`, dump]);
    const split = { DATABASE_URL: control.url, RUN_OPS_DATABASE_URL: ops.url };
    const migrated = await runCli(['migrate'], { cwd: dir, env: split, timeoutMs: 60_000 });
    expect(migrated.code, migrated.stderr).toBe(0);

    const during = await withStart(split, async (url) => {
      const listed = await runsOf(url, key);
      expect(listed.map((r) => r.id).sort()).toEqual([...before].sort());
      expect(listed.every((r) => r.status === 'succeeded')).toBe(true);
      return await runTo(url, key, 3);
    });
    expect(await countRuns(ops.url)).toBe(3);
    expect(await countRuns(control.url)).toBe(2); // the stale copy, until dropped

    // Roll back, as documented.
    run('psql', [
      control.url,
      '-c',
      'drop schema if exists weft_ops cascade',
      '-c',
      'drop schema if exists weft_loc_a0 cascade',
    ]);
    run('pg_dump', [
      '--format=custom',
      '--schema=weft_ops',
      '--schema=weft_loc_*',
      `--file=${dump}`,
      ops.url,
    ]);
    run('pg_restore', ['--no-owner', `--dbname=${control.url}`, dump]);
    const back = await runCli(['migrate'], { cwd: dir, env: one, timeoutMs: 60_000 });
    expect(back.code, back.stderr).toBe(0);
    await withStart(one, async (url) => {
      const listed = await runsOf(url, key);
      expect(listed.map((r) => r.id).sort()).toEqual([...before, during].sort());
      await runTo(url, key, 4);
    });
    expect(await countRuns(control.url)).toBe(4);
  }, 240_000);
});
