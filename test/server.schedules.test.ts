/**
 * Schedules over HTTP: create, read, list, patch, delete; bad input (a cron that does not parse,
 * a time zone that does not exist, an unknown workflow or step, unknown fields) is a clear 4xx and
 * writes nothing; the key matrix on every route (other environments 404, bad keys 401).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const report = defineWorkflow('report')
  .step('collect', () => ({ rows: 3 }))
  .step('render', { after: 'collect' }, (x) => x);

/** Once a year: the fixture's real-clock schedulers never fire it during the test. */
const YEARLY = '0 0 1 1 *';

describe.each(BACKENDS)('schedules over HTTP on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [report], { worker: false });
  });
  afterAll(async () => {
    await f?.close();
  });

  const count = async () => (await f.db.stores.schedules.listSchedules(f.environmentId)).length;
  const create = (body: unknown) => call(f.app, 'POST', '/api/v1/schedules', f.auth, body);

  it('creates, reads, lists, patches and deletes a schedule', async () => {
    const created = await create({
      workflowId: 'report',
      cron: '30 1 * * *',
      timezone: 'Europe/London',
      input: { mode: 'previous_step_output', step: 'collect' },
      countManualRuns: true,
      overlap: 'queue',
      catchUp: 'all',
      catchUpLimit: 5,
      enabled: true,
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`/api/v1/schedules/${created.body.id}`);
    expect(created.body).toMatchObject({
      workflowId: 'report',
      source: 'api',
      name: null,
      cron: '30 1 * * *',
      timezone: 'Europe/London',
      input: { mode: 'previous_step_output', step: 'collect' },
      countManualRuns: true,
      overlap: 'queue',
      catchUp: 'all',
      catchUpLimit: 5,
      enabled: true,
      lastSlotAt: null,
    });
    expect(Date.parse(created.body.nextSlotAt)).toBeGreaterThan(Date.now());
    const id = created.body.id as string;

    const got = await call(f.app, 'GET', `/api/v1/schedules/${id}`, f.auth);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(created.body);
    const list = await call(f.app, 'GET', '/api/v1/schedules', f.auth);
    expect(list.body.data.map((s: { id: string }) => s.id)).toContain(id);

    // a patch that leaves the timing alone keeps the next slot
    const quiet = await call(f.app, 'PATCH', `/api/v1/schedules/${id}`, f.auth, {
      overlap: 'skip',
    });
    expect(quiet.status).toBe(200);
    expect(quiet.body).toMatchObject({ overlap: 'skip', nextSlotAt: created.body.nextSlotAt });
    const off = await call(f.app, 'PATCH', `/api/v1/schedules/${id}`, f.auth, { enabled: false });
    expect(off.body).toMatchObject({ enabled: false, nextSlotAt: null });
    const moved = await call(f.app, 'PATCH', `/api/v1/schedules/${id}`, f.auth, {
      enabled: true,
      cron: YEARLY,
      timezone: 'UTC',
      input: { mode: 'static', value: { from: 'api' } },
    });
    expect(moved.body).toMatchObject({
      cron: YEARLY,
      input: { mode: 'static', value: { from: 'api' } },
    });
    expect(moved.body.nextSlotAt).toMatch(/-01-01T00:00:00\.000Z$/);

    const deleted = await call(f.app, 'DELETE', `/api/v1/schedules/${id}`, f.auth);
    expect(deleted.status).toBe(204);
    expect((await call(f.app, 'GET', `/api/v1/schedules/${id}`, f.auth)).status).toBe(404);
    expect((await call(f.app, 'DELETE', `/api/v1/schedules/${id}`, f.auth)).status).toBe(404);
  });

  describe('bad input: a clear 4xx and nothing written', () => {
    const cases: Array<[string, unknown, number, string, RegExp]> = [
      [
        'a cron that does not parse',
        { workflowId: 'report', cron: 'every day at nine' },
        422,
        'invalid_input',
        /"every day at nine", which does not parse.*Expected 5 fields/,
      ],
      [
        'a cron field out of range',
        { workflowId: 'report', cron: '61 * * * *' },
        422,
        'invalid_input',
        /"61 \* \* \* \*", which does not parse \(Invalid value for minute: 61\)/,
      ],
      [
        'a time zone that does not exist',
        { workflowId: 'report', cron: YEARLY, timezone: 'Europe/Atlantis' },
        422,
        'invalid_input',
        /"Europe\/Atlantis", which is not an IANA time zone/,
      ],
      [
        'an unknown workflow',
        { workflowId: 'nope', cron: YEARLY },
        404,
        'unknown_workflow',
        /workflow `nope`, which is not registered.*Registered: `report`/,
      ],
      [
        'a step the workflow does not have',
        { workflowId: 'report', cron: YEARLY, input: { mode: 'previous_step_output', step: 'x' } },
        422,
        'invalid_input',
        /input.step of the schedule is `x`.*`collect`, `render`/,
      ],
      [
        'previous_step_output without a step',
        { workflowId: 'report', cron: YEARLY, input: { mode: 'previous_step_output' } },
        422,
        'invalid_input',
        /input.step of the schedule is missing/,
      ],
      [
        'an unknown overlap policy',
        { workflowId: 'report', cron: YEARLY, overlap: 'sometimes' },
        400,
        'bad_request',
        /overlap/,
      ],
      [
        'an unknown field',
        { workflowId: 'report', cron: YEARLY, timeZone: 'UTC' },
        400,
        'bad_request',
        /timeZone/,
      ],
      [
        'a catchUpLimit out of range',
        { workflowId: 'report', cron: YEARLY, catchUpLimit: 5000 },
        400,
        'bad_request',
        /catchUpLimit/,
      ],
    ];
    it.each(cases)('%s', async (_name, body, status, code, message) => {
      const before = await count();
      const res = await create(body);
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.message).toMatch(message);
      expect(await count()).toBe(before);
    });

    it('a bad patch leaves the schedule as it was', async () => {
      const { body: s } = await create({ workflowId: 'report', cron: YEARLY });
      for (const patch of [{ cron: '* *' }, { timezone: 'Nowhere/Else' }, { workflowId: 'nope' }]) {
        const res = await call(f.app, 'PATCH', `/api/v1/schedules/${s.id}`, f.auth, patch);
        expect(res.status, JSON.stringify(patch)).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
      }
      expect((await call(f.app, 'GET', `/api/v1/schedules/${s.id}`, f.auth)).body).toEqual(s);
    });
  });

  it('key matrix: other environments get 404, bad keys 401, and nothing changes', async () => {
    const { body: s } = await create({ workflowId: 'report', cron: YEARLY });
    const routes: Array<[string, string, unknown?]> = [
      ['GET', `/api/v1/schedules/${s.id}`],
      ['PATCH', `/api/v1/schedules/${s.id}`, { enabled: false }],
      ['DELETE', `/api/v1/schedules/${s.id}`],
    ];
    for (const [method, path, body] of routes) {
      for (const other of [f.sibling, f.foreign]) {
        const res = await call(f.app, method, path, other.auth, body);
        expect(res.status, `${method} ${path} from ${other.environmentId}`).toBe(404);
        expect(res.body.error.code).toBe('not_found');
        expect(res.body.error.message).toContain(s.id);
      }
      for (const caller of f.unauthorized) {
        const res = await call(f.app, method, path, caller.headers, body);
        expect(res.status, `${method} ${path} as ${caller.name}`).toBe(401);
        expect(res.body.error).toMatchObject({
          code: 'unauthorized',
          details: { reason: caller.reason },
        });
      }
    }
    for (const caller of f.unauthorized) {
      expect((await call(f.app, 'GET', '/api/v1/schedules', caller.headers)).status).toBe(401);
      expect(
        (
          await call(f.app, 'POST', '/api/v1/schedules', caller.headers, {
            workflowId: 'report',
            cron: YEARLY,
          })
        ).status,
      ).toBe(401);
    }
    // other environments list only their own schedules
    const siblingList = await call(f.app, 'GET', '/api/v1/schedules', f.sibling.auth);
    expect(siblingList.status).toBe(200);
    expect(siblingList.body.data).toEqual([]);
    expect((await call(f.app, 'GET', `/api/v1/schedules/${s.id}`, f.auth)).body).toEqual(s);
  });

  it('the OpenAPI document describes the schedule routes', async () => {
    const doc = (await call(f.app, 'GET', '/api/openapi.json', {})).body;
    expect(Object.keys(doc.paths.$ref ?? doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/schedules', '/api/v1/schedules/{scheduleId}']),
    );
    expect(Object.keys(doc.paths['/api/v1/schedules/{scheduleId}'])).toEqual(
      expect.arrayContaining(['get', 'patch', 'delete']),
    );
    expect(doc.components.schemas.CreateScheduleRequest.properties.cron).toBeDefined();
  });
});
