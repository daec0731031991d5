/**
 * A database migrated by Weft 0.1.0 upgrades in place: test/fixtures/weft-0.1.0-database.sql (a
 * pg_dump of today's release's schema with a finished and an in-flight run) is restored into a
 * fresh database, the migrator brings it to this build (DDL migrations, then the SQL function
 * set, whose hash it records), a worker of this build finishes the in-flight run where 0.1.0 left
 * it, and a new run succeeds. On PGlite and PostgreSQL.
 *
 * And the other direction: a `weft worker` (which never migrates) started against a database
 * whose recorded function hash is not this build's refuses to start, naming both hashes and the
 * fix.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rerunRun } from '../src/engine/rerun.js';
import { defineWorkflow } from '../src/index.js';
import type { Executor } from '../src/store/executor.js';
import { loadFunctionSet, loadMigrations } from '../src/store/migrator.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { runCli } from './support/cli-process.js';
import { BACKENDS, createPgDatabase, type Backend } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

const DUMP = readFileSync(new URL('./fixtures/weft-0.1.0-database.sql', import.meta.url), 'utf8');
const ENVIRONMENT = 'env_01m8knft5kwb7rbgsmsacqqzjf';
const VERSION = 'wfv_01m8knft63pz2227a2r0sx5bfm';
const FINISHED_RUN = 'run_a001m8knft67yg8cqrmb58jjkqmq';
const IN_FLIGHT_RUN = 'run_a001m8knft8nwz2h7hjxbtjmc6fn';
const LOCATION = 'weft_loc_a0';

// The workflow the fixture's runs belong to, unchanged. Its step hashes cover each step's code
// text, and the fixture was written by a script run with tsx, which prints functions minified
// (`input=>({n:input.n+1})`; vitest keeps `(input) => ({ n: input.n + 1 })`): build the same text.
const code = <T>(source: string): T => new Function(`return ${source}`)() as T;
const chain3 = defineWorkflow('chain3')
  .step('a', code<() => { n: number }>('()=>({n:1})'))
  .step(
    'b',
    { after: 'a' },
    code<(input: { n: number }) => { n: number }>('input=>({n:input.n+1})'),
  )
  .step(
    'c',
    { after: 'b' },
    code<(input: { n: number }) => { n: number }>('input=>({n:input.n+1})'),
  );

async function restoreFixture(
  backend: Backend,
): Promise<{ executor: Executor; url?: string; drop: () => Promise<void> }> {
  if (backend === 'pglite') {
    const executor = await createPgliteExecutor();
    await executor.exec(DUMP);
    return { executor, drop: () => executor.close() };
  }
  const db = await createPgDatabase('upg');
  // The dump sets search_path to '' on its session: restore on a connection of its own.
  const restore = createPgExecutor({ connectionString: db.url, max: 1 });
  await restore.exec(DUMP);
  await restore.close();
  const executor = createPgExecutor({ connectionString: db.url, max: 10 });
  return {
    executor,
    url: db.url,
    drop: async () => {
      await executor.close();
      await db.drop();
    },
  };
}

describe.each(BACKENDS)('a database migrated by Weft 0.1.0 upgrades in place on %s', (backend) => {
  let restored: Awaited<ReturnType<typeof restoreFixture>>;
  let stores: Stores;

  beforeAll(async () => {
    restored = await restoreFixture(backend);
    stores = createStores({ control: restored.executor });
  });
  afterAll(async () => {
    await restored?.drop();
  });

  it('is not ready before the migrator runs, and the migrator applies the DDL and the function set', async () => {
    const before = await stores.readiness();
    expect(before).toMatchObject({ ready: false, reason: 'not_migrated' });
    expect(before.ready === false && before.reason === 'not_migrated' && before.schemas).toContain(
      LOCATION,
    );

    const applied = await stores.migrate();
    const location = loadMigrations('location');
    // 0.1.0 ran location 0001-0005: everything after, then the functions
    expect(applied).toEqual(
      expect.arrayContaining([
        ...location
          .filter((m) => m.number > 5)
          .map((m) => `${LOCATION}.${String(m.number).padStart(4, '0')}_${m.name}`),
        `${LOCATION}.functions@${loadFunctionSet('location').hash}`,
        `weft.functions@${loadFunctionSet('control').hash}`,
      ]),
    );
    expect(applied.some((a) => a.startsWith(`${LOCATION}.0001_`))).toBe(false);
    const recorded = await restored.executor.query<{ hash: string }>(
      `select hash from ${LOCATION}.weft_functions`,
    );
    expect(recorded.rows).toEqual([{ hash: loadFunctionSet('location').hash }]);
    // migrations 0.1.0 applied get the checksum of the shipped file
    const unchecked = await restored.executor.query<{ n: number }>(
      `select count(*)::int as n from ${LOCATION}.weft_migrations where checksum is null`,
    );
    expect(unchecked.rows[0]!.n).toBe(0);
    expect(await stores.readiness()).toEqual({ ready: true });
    // a second migrate has nothing to do
    expect(await stores.migrate()).toEqual([]);
  });

  it('a worker of this build finishes the in-flight run, and a new run succeeds', async () => {
    expect(await stores.runs.getRun(ENVIRONMENT, IN_FLIGHT_RUN)).toMatchObject({
      status: 'running',
    });
    const engine = await startTestEngine(stores, [chain3], { environmentId: ENVIRONMENT });
    try {
      const resumed = await engine.waitForRun(IN_FLIGHT_RUN, { timeoutMs: 20_000 });
      expect(resumed, JSON.stringify(resumed.error)).toMatchObject({
        status: 'succeeded',
        versionId: VERSION,
      });
      const steps = await restored.executor.query<{ step_key: string; status: string }>(
        `select step_key, status from ${LOCATION}.step_runs where run_id = $1 order by step_key`,
        [IN_FLIGHT_RUN],
      );
      expect(steps.rows).toEqual([
        { step_key: 'a', status: 'succeeded' },
        { step_key: 'b', status: 'succeeded' },
        { step_key: 'c', status: 'succeeded' },
      ]);
      // b got the output 0.1.0 committed for a ({ n: 1 }), c got b's
      const final = await stores.runs.getDataclip(ENVIRONMENT, resumed.finalDataclipId!);
      expect(final?.body).toEqual({ n: 3 });
      // a's attempt is 0.1.0's row; b's and c's are on their step runs (location 0016): one
      // succeeded attempt each, and one step.started and one step.succeeded each in the log
      const attempts = (await stores.runs.listStepRuns(ENVIRONMENT, IN_FLIGHT_RUN))!.map((s) => [
        s.stepKey,
        s.attempts.map((a) => [a.number, a.status]),
      ]);
      expect(attempts.sort()).toEqual([
        ['a', [[1, 'succeeded']]],
        ['b', [[1, 'succeeded']]],
        ['c', [[1, 'succeeded']]],
      ]);
      const events = (await stores.runs.listRunEvents(ENVIRONMENT, IN_FLIGHT_RUN))!
        .filter((e) => e.kind.startsWith('step.'))
        .map((e) => `${e.kind} ${e.stepKey}`);
      expect(events).toEqual([
        'step.started a',
        'step.succeeded a',
        'step.started b',
        'step.succeeded b',
        'step.started c',
        'step.succeeded c',
      ]);

      const fresh = await engine.trigger('chain3', { x: 2 });
      const done = await engine.waitForRun(fresh.run.id, { timeoutMs: 20_000 });
      expect(done).toMatchObject({ status: 'succeeded', versionId: VERSION });
      // the finished run of 0.1.0 is untouched
      expect(await stores.runs.getRun(ENVIRONMENT, FINISHED_RUN)).toMatchObject({
        status: 'succeeded',
      });

      // a rerun of it plans over the graph 0.1.0 stored (the execution plan compiled on read)
      const rerun = await rerunRun(stores, ENVIRONMENT, FINISHED_RUN, { fromStep: 'b' });
      expect(rerun.plan.nodes.map((n) => [n.stepId, n.fate])).toEqual([
        ['a', 'reuse'],
        ['b', 'rerun'],
        ['c', 'rerun'],
      ]);
      const rerunDone = await engine.waitForRun(rerun.run!.id, { timeoutMs: 20_000 });
      expect(rerunDone).toMatchObject({ status: 'succeeded', versionId: VERSION });
      expect(
        (await stores.runs.getDataclip(ENVIRONMENT, rerunDone.finalDataclipId!))?.body,
      ).toEqual({ n: 3 });
    } finally {
      await engine.stop();
    }
  });
});

describe('a worker against SQL functions it does not know', () => {
  let db: { url: string; drop: () => Promise<void> };
  let dir: string;

  beforeAll(async () => {
    db = await createPgDatabase('fnhash');
    dir = mkdtempSync(join(tmpdir(), 'weft-fnhash-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'fnhash', type: 'module' }));
  });
  afterAll(async () => {
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start, naming both hashes and `weft migrate`', async () => {
    const executor = createPgExecutor({ connectionString: db.url, max: 2 });
    try {
      await createStores({ control: executor }).migrate();
      // as if another build (older or newer) had migrated the functions
      await executor.query(`update ${LOCATION}.weft_functions set hash = '0123456789abcdef'`);
    } finally {
      await executor.close();
    }
    const result = await runCli(['worker', '--workflows', dir], {
      cwd: dir,
      env: { DATABASE_URL: db.url },
      timeoutMs: 60_000,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('is not migrated to this version of Weft');
    expect(result.stderr).toContain('0123456789abcdef');
    expect(result.stderr).toContain(loadFunctionSet('location').hash);
    expect(result.stderr).toContain('weft migrate');
  });
});
