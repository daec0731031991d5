/**
 * Issue 9 part A through the CLI, on PostgreSQL with two locations in two databases
 * (WEFT_LOCATIONS="a0,b1=<second database>"): `weft migrate` migrates both, `weft worker` executes a
 * run minted into the second location, `weft orgs cutover` flips an organization from another
 * process and the flip reaches a running process's mint site within a NOTIFY, not the 5 s TTL
 * (the 896-of-1,005 bug), and a bad WEFT_LOCATIONS fails at boot naming the setting.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggerRun } from '../src/engine/trigger.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { runCli, startCli } from './support/cli-process.js';
import { createPgDatabase } from './support/databases.js';

const tagOf = (id: string) => id.slice(id.indexOf('_') + 1, id.indexOf('_') + 3);

describe('weft migrate, worker and orgs cutover with two locations in two PostgreSQL databases', () => {
  let one: { url: string; drop: () => Promise<void> };
  let two: { url: string; drop: () => Promise<void> };
  let dir: string;
  const opened: Stores[] = [];
  const env = () => ({
    DATABASE_URL: one.url,
    WEFT_LOCATIONS: `a0,b1=${two.url}`,
    WEFT_DEFAULT_LOCATION: 'a0',
  });
  const open = () => {
    const stores = createStores({
      control: createPgExecutor({ connectionString: one.url, max: 4 }),
      locations: [
        { tag: 'a0' },
        { tag: 'b1', executor: createPgExecutor({ connectionString: two.url, max: 4 }) },
      ],
    });
    opened.push(stores);
    return stores;
  };

  beforeAll(async () => {
    one = await createPgDatabase('locs_cli_a');
    two = await createPgDatabase('locs_cli_b');
    dir = mkdtempSync(join(tmpdir(), 'weft-locations-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'loc-test', type: 'module' }));
    writeFileSync(
      join(dir, 'double.ts'),
      `import { defineWorkflow } from 'weft';
export const double = defineWorkflow<{ n: number }>('double').step('x2', ({ n }) => n * 2);
`,
    );
  });

  afterAll(async () => {
    for (const s of opened) await s.close().catch(() => {});
    await one?.drop();
    await two?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a bad WEFT_LOCATIONS fails at boot naming the setting and the fix', async () => {
    const result = await runCli(['migrate'], {
      cwd: dir,
      env: { ...env(), WEFT_LOCATIONS: 'a0,a0' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('WEFT_LOCATIONS names location "a0" twice');
  });

  it('weft migrate migrates every location, each in its database', async () => {
    const result = await runCli(['migrate', '--json'], { cwd: dir, env: env() });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const applied = (JSON.parse(result.stdout) as { applied: string[] }).applied;
    expect(applied.some((a) => a.startsWith('weft_loc_a0.'))).toBe(true);
    expect(applied.some((a) => a.startsWith('weft_loc_b1.0011'))).toBe(true);
    const stores = open();
    const where = await stores.runs.locations
      .get('b1')!
      .db.query(`select 1 from information_schema.tables where table_schema = 'weft_loc_b1'`);
    expect(where.rows.length).toBeGreaterThan(0);
    const notHere = await stores.controlDb.query(
      `select 1 from information_schema.tables where table_schema = 'weft_loc_b1'`,
    );
    expect(notHere.rows).toEqual([]);
    expect(await stores.isReady()).toBe(true);
  });

  it('weft worker executes a run minted into the second location; a flip by `weft orgs cutover` reaches another process at once', async () => {
    const worker = startCli(
      [
        'worker',
        '--workflows',
        join(dir, 'double.ts'),
        '--project',
        'shop',
        '--environment',
        'prod',
      ],
      { cwd: dir, env: env() },
    );
    try {
      await worker.waitFor('stdout', /"msg":"worker started"/, 60_000);
      const stores = open();
      await stores.control.watchChanges(); // a long-lived process: API server or worker
      const environmentId = (await stores.control.findEnvironmentByName('shop', 'prod'))!;
      const trigger = (n: number) =>
        triggerRun(stores, { environmentId, workflowId: 'double', input: { n } });
      expect(tagOf((await trigger(1)).run.id)).toBe('a0'); // env row now cached here

      const flip = await runCli(['orgs', 'cutover', 'default', '--location', 'b1'], {
        cwd: dir,
        env: env(),
      });
      expect(flip.stderr).toBe('');
      expect(flip.stdout).toContain('new runs go to location b1 (was a0)');
      const flippedAt = performance.now();
      // the next triggers of this process: how long until they mint into b1
      let minted = (await trigger(2)).run;
      while (tagOf(minted.id) !== 'b1' && performance.now() - flippedAt < 6_000)
        minted = (await trigger(3)).run;
      const lagMs = performance.now() - flippedAt;
      expect(tagOf(minted.id)).toBe('b1');
      expect(lagMs).toBeLessThan(1_000); // the TTL alone would take up to 5 s

      // the worker (another process) claims from b1 and finishes the run
      const deadline = Date.now() + 20_000;
      let status = '';
      while (Date.now() < deadline && status !== 'succeeded') {
        status = (await stores.runs.getRun(environmentId, minted.id))?.status ?? '';
        if (status !== 'succeeded') await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe('succeeded');

      const listed = await runCli(['orgs', 'locations', '--json'], { cwd: dir, env: env() });
      expect(JSON.parse(listed.stdout)).toMatchObject({
        organizations: [{ name: 'default', location: 'b1', locations: ['a0', 'b1'] }],
      });
      const back = await runCli(['orgs', 'cutover', 'default', '--default'], {
        cwd: dir,
        env: env(),
      });
      expect(back.stdout).toContain('new runs go to location a0 (was b1)');
      const unknown = await runCli(['orgs', 'cutover', 'default', '--location', 'zz'], {
        cwd: dir,
        env: env(),
      });
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('"zz" is not a run location of this installation');
      expect(await worker.stop()).toBe(0);
    } finally {
      await worker.stop();
    }
  }, 120_000);
});
