/**
 * The production commands against a fresh PostgreSQL database: `weft migrate` applies the
 * migrations (and is a no-op the second time), `weft keys` creates, lists and revokes a key,
 * and `weft worker` runs a workflow module and drains on SIGTERM.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggerRun } from '../src/engine/trigger.js';
import { createStores, openExecutor, type Stores } from '../src/store/stores.js';
import { runCli, startCli } from './support/cli-process.js';
import { createPgDatabase } from './support/databases.js';

describe('weft migrate, keys and worker on PostgreSQL', () => {
  let db: { url: string; drop: () => Promise<void> };
  let dir: string;
  let stores: Stores | undefined;
  const env = () => ({ DATABASE_URL: db.url });

  beforeAll(async () => {
    db = await createPgDatabase('cli');
    dir = mkdtempSync(join(tmpdir(), 'weft-cli-pg-'));
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'cli-pg-test', type: 'module' }),
    );
  });

  afterAll(async () => {
    await stores?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start without DATABASE_URL, and says how to set it', async () => {
    const result = await runCli(['migrate'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('weft migrate needs a database: set DATABASE_URL');
  });

  it('a worker refuses an unmigrated database and names the fix', async () => {
    const result = await runCli(['worker', '--workflows', dir], { cwd: dir, env: env() });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('is not migrated to this version of Weft. Run `weft migrate`');
  });

  it('applies the migrations to a fresh database, then has nothing to do', async () => {
    const first = await runCli(['migrate', '--json'], { cwd: dir, env: env() });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const applied = (JSON.parse(first.stdout) as { applied: string[] }).applied;
    expect(applied.length).toBeGreaterThan(0);
    expect(applied.some((a) => a.startsWith('weft.0001_'))).toBe(true);

    const second = await runCli(['migrate'], { cwd: dir, env: env() });
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('is up to date; nothing to apply');
    expect(second.stdout).not.toContain(
      db.url.split('@')[0]!.replace('postgres://', 'postgres://x:'),
    );
  });

  it('creates, lists and revokes an API key', async () => {
    const created = await runCli(
      ['keys', 'create', '--label', 'ci', '--environment', 'prod', '--json'],
      { cwd: dir, env: env() },
    );
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as { id: string; token: string };
    expect(key.token).toMatch(/^weft_prod_[0-9A-Za-z]{32}$/);

    stores = createStores({ control: await openExecutor(db.url) });
    expect(await stores.control.resolveApiKey(key.token)).toMatchObject({ keyId: key.id });

    const listed = await runCli(['keys', 'list', '--environment', 'prod'], {
      cwd: dir,
      env: env(),
    });
    expect(listed.stdout).toContain(key.id);
    expect(listed.stdout).toContain('ci');
    expect(listed.stdout).not.toContain(key.token);

    const revoked = await runCli(['keys', 'revoke', key.id], { cwd: dir, env: env() });
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`Revoked API key ${key.id}`);
    const again = await runCli(['keys', 'revoke', key.id], { cwd: dir, env: env() });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`no active API key ${key.id}`);
  });

  it('runs workflows with `weft worker` and drains on SIGTERM', async () => {
    writeFileSync(
      join(dir, 'slow.ts'),
      `import { defineWorkflow } from 'weft';
export const slow = defineWorkflow<{ n: number }>('slow-double')
  .step('wait', async ({ n }) => { await new Promise((r) => setTimeout(r, 600)); return n; })
  .step('double', { after: 'wait' }, (n) => n * 2);
`,
    );
    const worker = startCli(
      ['worker', '--workflows', join(dir, 'slow.ts'), '--project', 'shop', '--environment', 'prod'],
      { cwd: dir, env: env() },
    );
    try {
      await worker.waitFor('stdout', /"msg":"worker started"/, 60_000);
      expect(worker.stdout()).toContain('"workflows":["slow-double@v1"]');
      stores ??= createStores({ control: await openExecutor(db.url) });
      const environmentId = await stores.control.findEnvironmentByName('shop', 'prod');
      expect(environmentId).toBeDefined();

      const first = await triggerRun(stores, {
        environmentId: environmentId!,
        workflowId: 'slow-double',
        input: { n: 21 },
      });
      await waitForStatus(stores, environmentId!, first.run.id, 'succeeded');

      // SIGTERM while a step is running: the worker finishes it before exiting.
      const second = await triggerRun(stores, {
        environmentId: environmentId!,
        workflowId: 'slow-double',
        input: { n: 5 },
      });
      await waitForStatus(stores, environmentId!, second.run.id, 'running');
      expect(await worker.stop()).toBe(0);
      const steps = await stores.runs.listStepRuns(environmentId!, second.run.id);
      expect(steps?.find((s) => s.stepKey === 'wait')?.status).toBe('succeeded');
    } finally {
      await worker.stop();
    }
  });

  it('a sleep outlives a kill -9 of the worker process: a new process finishes the run', async () => {
    writeFileSync(
      join(dir, 'nap.ts'),
      `import { defineWorkflow } from 'weft';
export const nap = defineWorkflow<{ who: string }>('nap')
  .sleep('wait', { duration: '2s' })
  .step('wake', { after: 'wait' }, ({ who }) => \`good morning, \${who}\`);
`,
    );
    const args = [
      'worker',
      '--workflows',
      join(dir, 'nap.ts'),
      '--project',
      'shop',
      '--environment',
      'prod',
    ];
    const first = startCli(args, { cwd: dir, env: env() });
    let second: ReturnType<typeof startCli> | undefined;
    try {
      await first.waitFor('stdout', /"msg":"worker started"/, 60_000);
      stores ??= createStores({ control: await openExecutor(db.url) });
      const environmentId = (await stores.control.findEnvironmentByName('shop', 'prod'))!;
      const { run } = await triggerRun(stores, {
        environmentId,
        workflowId: 'nap',
        input: { who: 'Ada' },
      });
      for (let i = 0; i < 200; i++) {
        const steps = await stores.runs.listStepRuns(environmentId, run.id);
        if (steps?.find((s) => s.stepKey === 'wait')?.status === 'waiting') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(
        (await stores.runs.listStepRuns(environmentId, run.id))?.find((s) => s.stepKey === 'wait')
          ?.status,
      ).toBe('waiting');
      first.child.kill('SIGKILL'); // no drain, no goodbye: the process is gone
      await new Promise((r) => setTimeout(r, 2500)); // the sleep comes due while no process runs
      // every open step waits on a waitpoint (the sleep): the run is `waiting`, and stays so
      // while no process fires the due sleep
      expect((await stores.runs.getRun(environmentId, run.id))?.status).toBe('waiting');
      second = startCli(args, { cwd: dir, env: env() });
      await second.waitFor('stdout', /"msg":"worker started"/, 60_000);
      await waitForStatus(stores, environmentId, run.id, 'succeeded');
      const done = await stores.runs.getRun(environmentId, run.id);
      expect((await stores.runs.getDataclip(environmentId, done!.finalDataclipId!))?.body).toBe(
        'good morning, Ada',
      );
    } finally {
      await first.stop(100);
      await second?.stop();
    }
  });
});

async function waitForStatus(
  stores: Stores,
  environmentId: string,
  runId: string,
  status: string,
): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const run = await stores.runs.getRun(environmentId, runId);
    if (run?.status === status) return;
    if (Date.now() > deadline)
      throw new Error(`run ${runId} is ${run?.status}, expected ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
