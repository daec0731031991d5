/**
 * Deleting an environment as an operator does, in split mode on PostgreSQL (control plane and
 * run-ops in two databases), through real processes: `weft environments delete staging --yes`
 * through a running `weft server`; its key is refused on the next request; the server's cleanup
 * loop removes every run row of the environment from the run-ops database; another environment's
 * runs stay. Without `--yes` the command refuses and says why.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, type CliProcess } from './support/cli-process.js';
import { createPgDatabase } from './support/databases.js';

const WORKFLOW = `import { defineWorkflow } from 'weft';
export default defineWorkflow<{ n: number }>('double')
  .step('a', async ({ n }) => n * 2)
  .step('b', { after: 'a' }, async (n: number) => n + 1);
`;

describe('weft environments delete in split mode: the run data goes too', () => {
  let control: { url: string; drop: () => Promise<void> };
  let ops: { url: string; drop: () => Promise<void> };
  let dir: string;
  const processes: CliProcess[] = [];
  const env = () => ({
    DATABASE_URL: control.url,
    RUN_OPS_DATABASE_URL: ops.url,
    WEFT_CLEANUP_INTERVAL: '200ms',
    WEFT_CLEANUP_GRACE: '0s',
  });
  const cli = (args: string[], extra: Record<string, string> = {}) =>
    runCli(args, { cwd: dir, env: { ...env(), ...extra }, timeoutMs: 60_000 });
  const key = async (environment: string, scope: string) => {
    const r = await cli([
      'keys',
      'create',
      '--scope',
      scope,
      '--environment',
      environment,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { key: string }).key;
  };
  async function count(sql: string, params: unknown[]): Promise<number> {
    const c = new pg.Client({ connectionString: ops.url });
    await c.connect();
    try {
      return Number((await c.query<{ n: string }>(sql, params)).rows[0]!.n);
    } finally {
      await c.end();
    }
  }

  beforeAll(async () => {
    control = await createPgDatabase('split_dl_ctl');
    ops = await createPgDatabase('split_dl_ops');
    dir = mkdtempSync(join(tmpdir(), 'weft-split-del-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'split-del', type: 'module' }));
    writeFileSync(join(dir, 'double.ts'), WORKFLOW);
    const migrated = await cli(['migrate']);
    expect(migrated.code, migrated.stderr).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop(5_000)));
    await control?.drop();
    await ops?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('deletes staging through the server, refuses its key next, and cleans its runs; prod keeps its own', async () => {
    const admin = await key('prod', 'admin');
    const staging = await key('staging', 'trigger');
    const prod = await key('prod', 'trigger');
    const server = startCli(['server', '--port', '0'], { cwd: dir, env: env() });
    processes.push(server);
    const url = (
      await server.waitFor('stdout', /"url":"(http:\/\/[^"]+)"[^\n]*server listening/, 60_000)
    )[1]!;
    const workers = ['staging', 'prod'].map((e) =>
      startCli(['worker', '--workflows', './double.ts', '--environment', e], {
        cwd: dir,
        env: env(),
      }),
    );
    processes.push(...workers);
    for (const w of workers) await w.waitFor('stdout', /worker started/, 60_000);

    const trigger = (token: string, n: number) =>
      fetch(`${url}/api/v1/workflows/double/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ input: { n }, idempotencyKey: `k${n}` }),
      }).then(async (r) => {
        expect(r.status, await r.clone().text()).toBe(201);
        return ((await r.json()) as { id: string }).id;
      });
    const ids = { staging: [] as string[], prod: [] as string[] };
    for (let n = 0; n < 6; n++) {
      ids.staging.push(await trigger(staging, n));
      ids.prod.push(await trigger(prod, n));
    }
    const finished = async (token: string, id: string) => {
      for (let i = 0; i < 200; i++) {
        const r = (await (
          await fetch(`${url}/api/v1/runs/${id}`, { headers: { authorization: `Bearer ${token}` } })
        ).json()) as { status: string };
        if (r.status === 'succeeded') return;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error(`run ${id} did not finish`);
    };
    for (const id of ids.staging) await finished(staging, id);
    for (const id of ids.prod) await finished(prod, id);
    await workers[0]!.stop(5_000); // the deleted environment's worker is retired first

    const stagingEnv = await count(
      `select count(distinct environment_id) as n from weft_loc_a0.runs where id = any($1::text[])`,
      [ids.staging],
    );
    expect(stagingEnv).toBe(1);
    const envId = await (async () => {
      const c = new pg.Client({ connectionString: ops.url });
      await c.connect();
      const r = await c.query<{ e: string }>(
        `select environment_id as e from weft_loc_a0.runs where id = $1`,
        [ids.staging[0]],
      );
      await c.end();
      return r.rows[0]!.e;
    })();

    // the server's cleanup loop (every 200 ms here) removes the run data from the run-ops database
    const left = () =>
      count(
        `select (select count(*) from weft_loc_a0.runs where environment_id = $1)
              + (select count(*) from weft_loc_a0.step_runs where environment_id = $1)
              + (select count(*) from weft_loc_a0.dataclips where environment_id = $1)
              + (select count(*) from weft_loc_a0.run_events where run_id = any($2::text[]))
              + (select count(*) from weft_loc_a0.attempts where run_id = any($2::text[]))
              + (select count(*) from weft_ops.idempotency_keys where environment_id = $1) as n`,
        [envId, ids.staging],
      );
    expect(await left()).toBeGreaterThan(0); // before the delete

    const refused = await cli([
      'environments',
      'delete',
      'staging',
      '--url',
      url,
      '--api-key',
      admin,
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('nothing is archived');
    expect(refused.stderr).toContain('pass --yes');

    const deleted = await cli([
      'environments',
      'delete',
      'staging',
      '--yes',
      '--url',
      url,
      '--api-key',
      admin,
    ]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toContain('Deleted environment staging');

    // the key of the deleted environment: refused on the next request
    const next = await fetch(`${url}/api/v1/runs/${ids.staging[0]}`, {
      headers: { authorization: `Bearer ${staging}` },
    });
    expect(next.status).toBe(401);

    // the server's cleanup loop (every 200 ms here) removes it all from the run-ops database
    const started = Date.now();
    while ((await left()) > 0) {
      expect(Date.now() - started).toBeLessThan(20_000);
      await new Promise((res) => setTimeout(res, 100));
    }
    // prod untouched: its runs and their steps are all there
    expect(
      await count(`select count(*) as n from weft_loc_a0.runs where id = any($1::text[])`, [
        ids.prod,
      ]),
    ).toBe(6);
    expect(
      await count(
        `select count(*) as n from weft_loc_a0.step_runs where run_id = any($1::text[])`,
        [ids.prod],
      ),
    ).toBe(12);
    // whichever process got the job (the server or the prod worker) logged what it deleted
    expect(server.stdout() + workers[1]!.stdout()).toMatch(
      /cleaned run data of deleted environments/,
    );
  }, 180_000);
});
