/**
 * Operations over the API (admin keys): keys, environments and projects, with tenancy — an admin
 * key manages its own project, may create projects in its organization, and sees nothing of
 * another organization (404). A revoke is refused on the very next request, also by another
 * server process (its own pool and caches) on PostgreSQL; a paused environment refuses triggers
 * and its worker claims nothing until it is resumed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/engine/logger.js';
import { defineWorkflow } from '../src/index.js';
import { createApp } from '../src/server/index.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createStores } from '../src/store/stores.js';
import { BACKENDS } from './support/databases.js';
import { bearer, call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const wf = defineWorkflow<{ n: number }>('slow-pair')
  .step('first', async ({ n }) => {
    await new Promise((r) => setTimeout(r, 200));
    return n;
  })
  .step('second', { after: 'first' }, (n) => n + 1);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(BACKENDS)('operations API on %s', (backend) => {
  let f: ServerFixture;
  let envName: string;
  let projectName: string;
  const get = (path: string, auth = f.auth) => call(f.app, 'GET', path, auth);
  const post = (path: string, body: unknown, auth = f.auth) =>
    call(f.app, 'POST', path, auth, body);
  const patch = (path: string, body: unknown, auth = f.auth) =>
    call(f.app, 'PATCH', path, auth, body);

  beforeAll(async () => {
    f = await openServerFixture(backend, [wf], { worker: { pollIntervalMs: 100 } });
    const env = (await f.db.stores.control.getEnvironment(f.environmentId))!;
    envName = env.name;
    projectName = env.projectName;
  });
  afterAll(async () => {
    await f?.close();
  });

  it('creates a key (default scope trigger, shown once), lists prefixes only, and revokes it at once', async () => {
    const made = await post('/api/v1/keys', { label: 'ci deploys' });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({
      label: 'ci deploys',
      scopes: ['trigger'],
      environment: envName,
    });
    expect(made.body.key).toMatch(new RegExp(`^weft_${envName}_[0-9A-Za-z]{32}$`));
    expect(made.body.prefix).toBe(made.body.key.slice(0, `weft_${envName}_`.length + 4));

    const listed = await get('/api/v1/keys');
    expect(listed.status).toBe(200);
    const row = listed.body.data.find((k: { id: string }) => k.id === made.body.id);
    expect(row).toMatchObject({ scopes: ['trigger'], revokedAt: null, label: 'ci deploys' });
    expect(JSON.stringify(listed.body)).not.toContain(made.body.key);

    const newKey = bearer(made.body.key);
    expect((await get('/api/v1/runs', newKey)).status).toBe(200);
    expect((await get('/api/v1/keys', newKey)).status).toBe(403);

    const revoked = await post(`/api/v1/keys/${made.body.id}/revoke`, {});
    expect(revoked.status).toBe(200);
    expect(revoked.body).toEqual({ id: made.body.id, revoked: true });
    // The very next request: no cache grace.
    const refused = await get('/api/v1/runs', newKey);
    expect(refused.status).toBe(401);
    const again = await post(`/api/v1/keys/${made.body.id}/revoke`, {});
    expect(again.status).toBe(404);
    expect(again.body.error.message).toContain(made.body.id);
  });

  it('keys of another environment of the project; unknown environments and other organizations are 404', async () => {
    const made = await post('/api/v1/keys', {
      environment: 'staging',
      scopes: ['read', 'admin'],
    });
    expect(made.status).toBe(201);
    expect(made.body.key).toMatch(/^weft_staging_/);
    expect(made.body.scopes).toEqual(['read', 'admin']);
    const listed = await get('/api/v1/keys?environment=staging');
    expect(listed.body.data.map((k: { id: string }) => k.id)).toContain(made.body.id);

    const unknown = await post('/api/v1/keys', { environment: 'nope' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain('staging');

    // Another organization: its environment name is not reachable, its keys are not listed,
    // and it cannot revoke ours.
    const foreignList = await get('/api/v1/keys', f.foreign.auth);
    expect(foreignList.status).toBe(200);
    expect(foreignList.body.data.map((k: { id: string }) => k.id)).not.toContain(f.keyId);
    expect((await get(`/api/v1/keys?environment=${envName}`, f.foreign.auth)).status).toBe(
      envName === 'test' ? 200 : 404,
    );
    const stolen = await post(`/api/v1/keys/${made.body.id}/revoke`, {}, f.foreign.auth);
    expect(stolen.status).toBe(404);
    expect((await get('/api/v1/runs', bearer(made.body.key))).status).toBe(200);

    const bad = await post('/api/v1/keys', { scopes: ['root'], label: 'a\u0000b' });
    expect([400, 422]).toContain(bad.status);
    expect(JSON.stringify(bad.body.error.details)).toContain('scopes');
    expect(JSON.stringify(bad.body.error.details)).toContain('label');
  });

  it('environments: list, create, 409 on a taken name, 400 on a bad one', async () => {
    const listed = await get('/api/v1/environments');
    expect(listed.status).toBe(200);
    expect(
      listed.body.data.map((e: { name: string; current: boolean }) => [e.name, e.current]),
    ).toEqual(
      [
        [envName, true],
        ['staging', false],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    const made = await post('/api/v1/environments', { name: 'qa' });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ name: 'qa', paused: false, current: false });
    const taken = await post('/api/v1/environments', { name: 'qa' });
    expect(taken.status).toBe(409);
    expect(taken.body.error.code).toBe('already_exists');
    const bad = await post('/api/v1/environments', { name: 'QA env' });
    expect(bad.status).toBe(400);
    expect((await get('/api/v1/environments', f.foreign.auth)).body.data).toHaveLength(1);
    expect((await patch('/api/v1/environments/qa', { paused: true }, f.foreign.auth)).status).toBe(
      404,
    );
  });

  it('a paused environment refuses triggers (409) and its worker claims nothing until resumed', async () => {
    const started = await post('/api/v1/workflows/slow-pair/runs', { input: { n: 1 } });
    expect(started.status).toBe(201);
    const paused = await patch(`/api/v1/environments/${envName}`, { paused: true });
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ name: envName, paused: true });

    const refused = await post('/api/v1/workflows/slow-pair/runs', { input: { n: 2 } });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('environment_paused');
    expect(refused.body.error.message).toContain(`weft environments resume ${envName}`);
    // Reading still works while paused.
    expect((await get(`/api/v1/runs/${started.body.id}`)).status).toBe(200);

    // The step in flight (if any) finishes; nothing after it is claimed.
    await sleep(1_500);
    const held = await get(`/api/v1/runs/${started.body.id}`);
    expect(held.body.status).not.toBe('succeeded');

    expect((await patch(`/api/v1/environments/${envName}`, { paused: false })).status).toBe(200);
    const deadline = Date.now() + 15_000;
    let status = '';
    while (Date.now() < deadline) {
      status = (await get(`/api/v1/runs/${started.body.id}`)).body.status;
      if (status === 'succeeded') break;
      await sleep(100);
    }
    expect(status).toBe('succeeded');
  });

  it('projects: list the organization, change own settings, pause the whole project', async () => {
    const listed = await get('/api/v1/projects');
    expect(listed.status).toBe(200);
    expect(listed.body.data).toEqual([
      expect.objectContaining({ name: projectName, current: true, saveDataclips: true }),
    ]);
    const changed = await patch(`/api/v1/projects/${projectName}`, {
      saveDataclips: false,
      retentionDays: 30,
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ saveDataclips: false, retentionDays: 30, paused: false });
    expect((await f.db.stores.control.getEnvironment(f.environmentId))?.saveDataclips).toBe(false);
    const cleared = await patch(`/api/v1/projects/${projectName}`, {
      saveDataclips: true,
      retentionDays: null,
    });
    expect(cleared.body).toMatchObject({ saveDataclips: true, retentionDays: null });

    const paused = await patch(`/api/v1/projects/${projectName}`, { paused: true });
    expect(paused.body.paused).toBe(true);
    const envs = await get('/api/v1/environments');
    expect(envs.body.data.every((e: { projectPaused: boolean }) => e.projectPaused)).toBe(true);
    const refused = await post('/api/v1/workflows/slow-pair/runs', { input: { n: 3 } });
    expect(refused.body.error?.code).toBe('environment_paused');
    expect((await patch(`/api/v1/projects/${projectName}`, { paused: false })).status).toBe(200);
    expect((await post('/api/v1/workflows/slow-pair/runs', { input: { n: 4 } })).status).toBe(201);

    // Another organization's project name is not found, from its side or ours.
    expect((await patch(`/api/v1/projects/${projectName}`, {}, f.foreign.auth)).status).toBe(404);
  });

  it('creates a project in the organization with its own environment and admin key', async () => {
    const made = await post('/api/v1/projects', {
      name: 'billing',
      environment: 'prod',
      saveDataclips: false,
    });
    expect(made.status).toBe(201);
    expect(made.body.project).toMatchObject({ name: 'billing', saveDataclips: false });
    expect(made.body.environment).toMatchObject({ name: 'prod' });
    expect(made.body.key).toMatchObject({ scopes: ['admin'], environment: 'prod' });
    const billing = bearer(made.body.key.key);
    const theirEnvs = await get('/api/v1/environments', billing);
    expect(theirEnvs.body.data.map((e: { name: string }) => e.name)).toEqual(['prod']);
    expect((await get('/api/v1/runs', billing)).body.data).toEqual([]);

    const orgProjects = await get('/api/v1/projects');
    expect(orgProjects.body.data.map((p: { name: string }) => p.name).sort()).toEqual(
      ['billing', projectName].sort(),
    );
    // Same organization, another project: listed, but managed with its own key.
    const foreignProject = await patch('/api/v1/projects/billing', { saveDataclips: true });
    expect(foreignProject.status).toBe(403);
    expect(foreignProject.body.error.message).toContain('billing');
    expect((await post('/api/v1/projects', { name: 'billing' })).status).toBe(409);
    // Another organization sees none of it.
    const foreign = await get('/api/v1/projects', f.foreign.auth);
    expect(foreign.body.data.map((p: { name: string }) => p.name)).not.toContain('billing');
  });

  it('a paused environment fires no schedule; after the resume the schedule goes on', async () => {
    const cronRuns = async () =>
      (await get('/api/v1/runs?limit=100')).body.data.filter(
        (r: { trigger: { kind: string } }) => r.trigger.kind === 'cron',
      ).length;
    expect((await patch(`/api/v1/environments/${envName}`, { paused: true })).status).toBe(200);
    const schedule = await post('/api/v1/schedules', {
      workflowId: 'slow-pair',
      cron: '* * * * * *',
      input: { mode: 'static', value: { n: 0 } },
    });
    expect(schedule.status).toBe(201);
    await sleep(2_500);
    expect(await cronRuns()).toBe(0);
    expect((await patch(`/api/v1/environments/${envName}`, { paused: false })).status).toBe(200);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await cronRuns()) === 0) await sleep(100);
    expect(await cronRuns()).toBeGreaterThan(0);
    expect(
      (await call(f.app, 'DELETE', `/api/v1/schedules/${schedule.body.id}`, f.auth)).status,
    ).toBe(204);
  });

  it('organization flags: runs.location must be a configured location; another organization is untouched', async () => {
    const org = await get('/api/v1/organization');
    expect(org.status).toBe(200);
    expect(org.body.flags).toEqual({});
    const unknown = await patch('/api/v1/organization', { flags: { 'runs.location': 'zz' } });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.message).toContain('"a0"');
    const set = await patch('/api/v1/organization', { flags: { 'runs.location': 'a0' } });
    // the cutover also records where the organization's runs are (listings read those)
    expect(set.body.flags).toEqual({ 'runs.location': 'a0', 'runs.locations': ['a0'] });
    expect((await f.db.stores.control.getEnvironment(f.environmentId))?.flags).toEqual({
      'runs.location': 'a0',
      'runs.locations': ['a0'],
    });
    expect((await post('/api/v1/workflows/slow-pair/runs', { input: { n: 5 } })).status).toBe(201);
    const foreign = await get('/api/v1/organization', f.foreign.auth);
    expect(foreign.body.id).not.toBe(org.body.id);
    expect(foreign.body.flags).toEqual({});
    const cleared = await patch('/api/v1/organization', { flags: { 'runs.location': null } });
    expect(cleared.body.flags).toEqual({ 'runs.locations': ['a0'] });
    expect((await patch('/api/v1/organization', { flags: { other: 1 } })).status).toBe(400);
    // POST /api/v1/organization/cutover: the same, with where new runs went before
    const cut = await post('/api/v1/organization/cutover', { location: 'a0' });
    expect(cut.status).toBe(200);
    expect(cut.body).toMatchObject({ location: 'a0', previous: 'a0', locations: ['a0'] });
    const bad = await post('/api/v1/organization/cutover', { location: 'zz' });
    expect(bad.status).toBe(422);
    expect(bad.body.error.message).toContain('"zz" is not a run location of this installation');
    // offset pagination is refused with the way to page
    const offset = await get('/api/v1/runs?offset=20');
    expect(offset.status).toBe(400);
    expect(JSON.stringify(offset.body)).toContain('nextCursor');
  });

  it('retention wipes the bodies of ended runs older than retentionDays, and nothing of a run still open', async () => {
    const run = async (n: number) => {
      const made = await post('/api/v1/workflows/slow-pair/runs', { input: { n } });
      for (let i = 0; i < 150; i++) {
        const r = await get(`/api/v1/runs/${made.body.id}`);
        if (r.body.status === 'succeeded') return r.body;
        await sleep(100);
      }
      throw new Error(`run ${made.body.id} did not succeed`);
    };
    const [old, open] = [await run(10), await run(20)];
    expect(await f.engine.applyRetentionOnce()).toBe(0); // no retention set
    expect(
      (await patch(`/api/v1/projects/${projectName}`, { retentionDays: 1 })).body.retentionDays,
    ).toBe(1);
    // Both runs (and their values) two days old; the second one made to look still open.
    const loc = 'weft_loc_a0';
    for (const id of [old.id, open.id]) {
      await f.db.executor.query(
        `update ${loc}.runs set created_at = created_at - interval '2 days' where id = $1`,
        [id],
      );
      await f.db.executor.query(
        `update ${loc}.dataclips set created_at = created_at - interval '2 days' where run_id = $1`,
        [id],
      );
    }
    await f.db.executor.query(`update ${loc}.runs set status = 'waiting' where id = $1`, [open.id]);
    expect(await f.engine.applyRetentionOnce()).toBeGreaterThan(0);
    const wiped = await get(`/api/v1/dataclips/${old.inputDataclipId}`);
    expect(wiped.body).toMatchObject({ body: null });
    expect(wiped.body.wipedAt).not.toBeNull();
    const kept = await get(`/api/v1/dataclips/${open.inputDataclipId}`);
    expect(kept.body).toMatchObject({ body: { n: 20 }, wipedAt: null });
    expect(await f.engine.applyRetentionOnce()).toBe(0); // idempotent
    await patch(`/api/v1/projects/${projectName}`, { retentionDays: null });
  });

  it.runIf(backend === 'postgres')(
    'a revoke through one server process is refused by another on its next request',
    async () => {
      // A second "process": its own pool, control store, caches and LISTEN connection.
      const executor = createPgExecutor({ connectionString: f.db.url!, max: 2 });
      const other = createStores({ control: executor });
      try {
        const appB = createApp({ stores: other, logger: silentLogger() });
        const made = await post('/api/v1/keys', { scopes: ['read'] });
        const key = bearer(made.body.key);
        // B has the key cached (and is listening) after its first request.
        expect((await call(appB, 'GET', '/api/v1/runs', key)).status).toBe(200);
        expect((await call(appB, 'GET', '/api/v1/runs', key)).status).toBe(200);

        const revokedAt = performance.now();
        expect((await post(`/api/v1/keys/${made.body.id}/revoke`, {})).status).toBe(200);
        let status = 200;
        while (status === 200 && performance.now() - revokedAt < 5_000) {
          status = (await call(appB, 'GET', '/api/v1/runs', key)).status;
          if (status === 200) await sleep(5);
        }
        const tookMs = performance.now() - revokedAt;
        console.log(`revoke seen by the other process after ${tookMs.toFixed(1)} ms`);
        expect(status).toBe(401);
        // Well inside the cache TTL (5 s): the notification did it, not the expiry.
        expect(tookMs).toBeLessThan(1_000);

        // A pause reaches the other process's (cached) environment the same way: what its
        // worker reads before each claim.
        expect((await other.control.getEnvironment(f.environmentId))?.paused).toBe(false);
        const pausedAt = performance.now();
        expect((await patch(`/api/v1/environments/${envName}`, { paused: true })).status).toBe(200);
        let paused = false;
        while (!paused && performance.now() - pausedAt < 5_000) {
          paused = (await other.control.getEnvironment(f.environmentId))?.paused ?? false;
          if (!paused) await sleep(5);
        }
        const pauseMs = performance.now() - pausedAt;
        console.log(`pause seen by the other process after ${pauseMs.toFixed(1)} ms`);
        expect(paused).toBe(true);
        expect(pauseMs).toBeLessThan(1_000);
        await patch(`/api/v1/environments/${envName}`, { paused: false });
      } finally {
        await other.close();
      }
    },
  );
});
