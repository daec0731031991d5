/**
 * The audit trail: each action that took effect over the API is recorded exactly once (a retried
 * cancel, a second completion of a token, a refused request: no entry), attributed to the key
 * (id, prefix, label) with the request id; schedule and webhook edits too; a control-plane action
 * and its entry commit together (an entry that cannot be written undoes the action); GET /api/v1/audit filters and pages with a keyset
 * cursor, shows an environment only its own entries, and needs the admin scope.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { bearer, call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const approval = defineWorkflow<string>('audited-approval')
  .approval('review', { schema: z.object({ ok: z.boolean() }).strict() })
  .step('note', { after: 'review' }, (r) => r);
const hold = defineWorkflow('audited-hold').sleep('nap', { duration: '1h' });
const quick = defineWorkflow<number>('audited-quick').step('double', (n) => n * 2);

interface Entry {
  id: string;
  action: string;
  targetId: string;
  actor: { keyId: string; keyPrefix: string; label: string | null };
  requestId: string | null;
  details: Record<string, unknown> | null;
}

describe.each(BACKENDS)('audit trail on %s', (backend) => {
  let f: ServerFixture;
  let admin: { id: string; auth: Record<string, string> };

  beforeAll(async () => {
    f = await openServerFixture(backend, [approval, hold, quick]);
    const key = await f.db.stores.control.createApiKey(f.environmentId, 'auditor', ['admin']);
    admin = { id: key.id, auth: bearer(key.token) };
  });
  afterAll(async () => {
    await f?.close();
  });

  const entries = async (query = ''): Promise<Entry[]> => {
    const res = await call(f.app, 'GET', `/api/v1/audit?limit=200${query}`, admin.auth);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.data as Entry[];
  };
  const entriesFor = async (targetId: string) =>
    entries(`&targetId=${encodeURIComponent(targetId)}`);

  const trigger = async (workflowId: string, input: unknown) => {
    const res = await call(f.app, 'POST', `/api/v1/workflows/${workflowId}/runs`, admin.auth, {
      input,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };

  it('records a cancel once: the retried cancel (409) writes nothing; actor, request id and target are kept', async () => {
    const runId = await trigger('audited-hold', null);
    const first = await call(f.app, 'POST', `/api/v1/runs/${runId}/cancel`, admin.auth);
    expect(first.status).toBe(200);
    const again = await call(f.app, 'POST', `/api/v1/runs/${runId}/cancel`, admin.auth);
    expect(again.status).toBe(409);
    const list = await entriesFor(runId);
    expect(list).toHaveLength(1);
    const key = (await f.db.stores.control.listApiKeys(f.environmentId)).find(
      (k) => k.id === admin.id,
    )!;
    expect(list[0]).toMatchObject({
      action: 'run.cancel',
      targetId: runId,
      actor: { keyId: admin.id, keyPrefix: key.prefix, label: 'auditor' },
      requestId: first.headers.get('x-request-id'),
    });
  });

  it('records one of five concurrent cancels of the same run: one 200, four 409, one entry', async () => {
    const runId = await trigger('audited-hold', null);
    const answers = await Promise.all(
      Array.from({ length: 5 }, () =>
        call(f.app, 'POST', `/api/v1/runs/${runId}/cancel`, admin.auth),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409, 409, 409, 409]);
    expect((await entriesFor(runId)).map((e) => e.action)).toEqual(['run.cancel']);
  });

  it('records a waitpoint completion once; the second completion (409) and a refused payload (422) write nothing', async () => {
    const runId = await trigger('audited-approval', 'doc');
    let token: string | undefined;
    for (let i = 0; i < 400 && token === undefined; i++) {
      const [w] = await f.db.stores.runs.listWaitpoints(f.environmentId, runId);
      if (w?.status === 'waiting') token = w.id;
      else await sleep(25);
    }
    expect(token).toBeDefined();
    const path = `/api/v1/waitpoints/${token}/complete`;
    expect((await call(f.app, 'POST', path, admin.auth, { payload: { ok: 'yes' } })).status).toBe(
      422,
    );
    expect((await call(f.app, 'POST', path, admin.auth, { payload: { ok: true } })).status).toBe(
      200,
    );
    expect((await call(f.app, 'POST', path, admin.auth, { payload: { ok: true } })).status).toBe(
      409,
    );
    const list = await entriesFor(token!);
    expect(list.map((e) => e.action)).toEqual(['waitpoint.complete']);
    expect(list[0]!.details).toMatchObject({ runId, stepKey: 'review' });
  });

  it('records a rerun and a bulk rerun (not a dry run)', async () => {
    const runId = await trigger('audited-quick', 2);
    for (let i = 0; i < 400; i++) {
      if ((await f.db.stores.runs.getRun(f.environmentId, runId))?.status === 'succeeded') break;
      await sleep(25);
    }
    const dry = await call(f.app, 'POST', `/api/v1/runs/${runId}/rerun`, admin.auth, {
      fromStep: 'double',
      dryRun: true,
    });
    expect(dry.status).toBe(200);
    const rerun = await call(f.app, 'POST', `/api/v1/runs/${runId}/rerun`, admin.auth, {
      fromStep: 'double',
    });
    expect(rerun.status, JSON.stringify(rerun.body)).toBe(201);
    const list = await entriesFor(runId);
    expect(list.map((e) => e.action)).toEqual(['run.rerun']);
    expect(list[0]!.details).toMatchObject({ newRunId: rerun.body.run.id, fromStep: 'double' });

    const bulk = await call(f.app, 'POST', '/api/v1/bulk-reruns', admin.auth, {
      filter: { workflowId: 'audited-quick', status: ['succeeded'] },
      fromStep: 'double',
    });
    expect(bulk.status, JSON.stringify(bulk.body)).toBe(202);
    const bulkEntries = await entriesFor(bulk.body.id as string);
    expect(bulkEntries.map((e) => e.action)).toEqual(['bulk_rerun.create']);
  });

  it('records key creation and revocation, environment pause and resume, project and flag changes', async () => {
    const created = await call(f.app, 'POST', '/api/v1/keys', admin.auth, {
      label: 'ci',
      scopes: ['read'],
    });
    expect(created.status).toBe(201);
    const keyId = created.body.id as string;
    expect((await call(f.app, 'POST', `/api/v1/keys/${keyId}/revoke`, admin.auth)).status).toBe(
      200,
    );
    // revoking again finds no active key: 404, no entry
    expect((await call(f.app, 'POST', `/api/v1/keys/${keyId}/revoke`, admin.auth)).status).toBe(
      404,
    );
    expect((await entriesFor(keyId)).map((e) => e.action)).toEqual(['key.revoke', 'key.create']);
    expect((await entriesFor(keyId))[1]!.details).toMatchObject({ scopes: ['read'], label: 'ci' });

    const env = (await f.db.stores.control.getEnvironment(f.environmentId))!;
    for (const paused of [true, false]) {
      const res = await call(f.app, 'PATCH', `/api/v1/environments/${env.name}`, admin.auth, {
        paused,
      });
      expect(res.status).toBe(200);
    }
    const envEntries = await entriesFor(f.environmentId);
    expect(envEntries.map((e) => [e.action, e.details?.paused])).toEqual([
      ['environment.update', false],
      ['environment.update', true],
    ]);

    const project = await call(f.app, 'PATCH', `/api/v1/projects/${env.projectName}`, admin.auth, {
      retentionDays: 30,
    });
    expect(project.status).toBe(200);
    expect((await entriesFor(env.projectId)).map((e) => e.action)).toEqual(['project.update']);
    const flags = await call(f.app, 'PATCH', '/api/v1/organization', admin.auth, {
      flags: { 'runs.location': null },
    });
    expect(flags.status, JSON.stringify(flags.body)).toBe(200);
    expect((await entries('&action=organization.update')).length).toBe(1);
  });

  it('records schedule creation, change and deletion once each; a refused or failed edit writes nothing', async () => {
    const bad = await call(f.app, 'POST', '/api/v1/schedules', admin.auth, {
      workflowId: 'audited-quick',
      cron: 'not a cron',
    });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(bad.status).toBeLessThan(500);
    const created = await call(f.app, 'POST', '/api/v1/schedules', admin.auth, {
      workflowId: 'audited-quick',
      cron: '0 3 * * *',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const patched = await call(f.app, 'PATCH', `/api/v1/schedules/${id}`, admin.auth, {
      enabled: false,
    });
    expect(patched.status).toBe(200);
    const refused = await call(f.app, 'PATCH', `/api/v1/schedules/${id}`, admin.auth, {
      cron: '99 99 * * *',
    });
    expect(refused.status).toBe(422);
    expect((await call(f.app, 'DELETE', `/api/v1/schedules/${id}`, admin.auth)).status).toBe(204);
    // gone: a second delete and a change are 404s, with no entry
    expect((await call(f.app, 'DELETE', `/api/v1/schedules/${id}`, admin.auth)).status).toBe(404);
    expect(
      (await call(f.app, 'PATCH', `/api/v1/schedules/${id}`, admin.auth, { enabled: true })).status,
    ).toBe(404);
    const mine = await entriesFor(id);
    expect(mine.map((e) => e.action)).toEqual([
      'schedule.delete',
      'schedule.update',
      'schedule.create',
    ]);
    expect(mine[2]!.details).toMatchObject({ workflowId: 'audited-quick', cron: '0 3 * * *' });
    expect(mine[1]!.details).toEqual({ changes: { enabled: false } });
    expect(mine.every((e) => e.actor.keyId === admin.id && e.requestId)).toBe(true);
    // the refused create wrote none either: every schedule entry is this schedule's
    expect((await entries('&action=schedule.create')).map((e) => e.targetId)).toEqual([id]);
  });

  it('records webhook creation, change and deletion once each, never the secret', async () => {
    const unknown = await call(f.app, 'POST', '/api/v1/webhooks', admin.auth, {
      workflowId: 'nope',
    });
    expect(unknown.status).toBe(404);
    const created = await call(f.app, 'POST', '/api/v1/webhooks', admin.auth, {
      workflowId: 'audited-quick',
      signed: true,
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const secret = created.body.secret as string;
    expect(
      (await call(f.app, 'PATCH', `/api/v1/webhooks/${id}`, admin.auth, { label: 'ci' })).status,
    ).toBe(200);
    expect((await call(f.app, 'DELETE', `/api/v1/webhooks/${id}`, admin.auth)).status).toBe(204);
    expect((await call(f.app, 'DELETE', `/api/v1/webhooks/${id}`, admin.auth)).status).toBe(404);
    expect(
      (await call(f.app, 'PATCH', `/api/v1/webhooks/${id}`, admin.auth, { enabled: false })).status,
    ).toBe(404);
    const mine = await entriesFor(id);
    expect(mine.map((e) => e.action)).toEqual([
      'webhook.delete',
      'webhook.update',
      'webhook.create',
    ]);
    expect(mine[2]!.details).toEqual({ workflowId: 'audited-quick', label: null, signed: true });
    expect(JSON.stringify(mine)).not.toContain(secret);
    expect((await entries('&action=webhook.create')).map((e) => e.targetId)).toEqual([id]);
  });

  it('writes a control-plane action and its entry in one transaction: if the entry fails, the action is undone', async () => {
    // Make the audit insert fail for key creation only (a database refusing the row).
    const schema = f.db.stores.schemas.control;
    await f.db.executor.exec(`
      create function ${schema}.p_refuse_audit() returns trigger language plpgsql as $$
      begin raise exception 'audit_log refused (test)'; end $$;
      create trigger p_refuse_audit before insert on ${schema}.audit_log
        for each row when (new.action in ('key.create', 'environment.create'))
        execute function ${schema}.p_refuse_audit();`);
    try {
      const res = await call(f.app, 'POST', '/api/v1/keys', admin.auth, {
        label: 'unrecorded',
        scopes: ['read'],
      });
      expect(res.status).toBeGreaterThanOrEqual(500);
      // After-commit auditing left this key in place, unrecorded.
      const keys = await call(f.app, 'GET', '/api/v1/keys', admin.auth);
      expect((keys.body.data as Array<{ label: string | null }>).map((k) => k.label)).not.toContain(
        'unrecorded',
      );
      const env = await call(f.app, 'POST', '/api/v1/environments', admin.auth, {
        name: 'unrecorded',
      });
      expect(env.status).toBeGreaterThanOrEqual(500);
      const envs = await call(f.app, 'GET', '/api/v1/environments', admin.auth);
      expect((envs.body.data as Array<{ name: string }>).map((e) => e.name)).not.toContain(
        'unrecorded',
      );
    } finally {
      await f.db.executor.exec(
        `drop trigger p_refuse_audit on ${schema}.audit_log; drop function ${schema}.p_refuse_audit();`,
      );
    }
    // and once the entry can be written, the same request succeeds, recorded once
    const created = await call(f.app, 'POST', '/api/v1/environments', admin.auth, {
      name: 'recorded',
    });
    expect(created.status).toBe(201);
    // a taken name is a 409 and writes nothing
    const taken = await call(f.app, 'POST', '/api/v1/environments', admin.auth, {
      name: 'recorded',
    });
    expect(taken.status).toBe(409);
    expect((await entries('&action=environment.create')).map((e) => e.details?.name)).toEqual([
      'recorded',
    ]);
  });

  it('pages newest first with a keyset cursor, filters by actor, and refuses a forged cursor', async () => {
    const all = await entries();
    expect(all.length).toBeGreaterThanOrEqual(8);
    const ids = all.map((e) => Number(e.id));
    expect([...ids].sort((a, b) => b - a)).toEqual(ids);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = `/api/v1/audit?limit=3${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await call(f.app, 'GET', q, admin.auth);
      expect(res.status).toBe(200);
      seen.push(...(res.body.data as Entry[]).map((e) => e.id));
      cursor = res.body.nextCursor as string | null;
    } while (cursor !== null);
    expect(seen).toEqual(all.map((e) => e.id));
    expect((await entries(`&actorKeyId=${admin.id}`)).length).toBe(all.length);
    expect((await entries('&actorKeyId=key_nobody')).length).toBe(0);
    const forged = await call(f.app, 'GET', '/api/v1/audit?cursor=abc', admin.auth);
    expect(forged.status).toBe(422);
    expect(forged.body.error.code).toBe('invalid_cursor');
  });

  it('shows another environment none of these entries, and needs the admin scope', async () => {
    const sibling = await call(f.app, 'GET', '/api/v1/audit', f.sibling.auth);
    expect(sibling.status).toBe(200);
    expect(sibling.body.data).toEqual([]);
    const reader = await f.db.stores.control.createApiKey(f.environmentId, 'reader', ['trigger']);
    const res = await call(f.app, 'GET', '/api/v1/audit', bearer(reader.token));
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ code: 'forbidden', details: { needed: 'admin' } });
  });
});
