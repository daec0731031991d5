/**
 * `weft schedules create|list|delete` against a real server over HTTP: the schedule lands with
 * the options given, the list shows it, the API's 4xx (bad cron, bad time zone) is passed through,
 * and delete removes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  runSchedulesCreate,
  runSchedulesDelete,
  runSchedulesList,
} from '../src/cli/schedules-commands.js';
import { defineWorkflow } from '../src/index.js';
import { startServer, type RunningServer } from '../src/server/serve.js';
import { BACKENDS } from './support/databases.js';
import { openServerFixture, type ServerFixture } from './support/server-fixture.js';
import { captureStdout as capture } from './support/capture.js';

const wf = defineWorkflow('cli-sched')
  .step('fetch', () => ({ items: 1 }))
  .step('store', { after: 'fetch' }, (x) => x);

describe.each(BACKENDS)('weft schedules on %s', (backend) => {
  let f: ServerFixture;
  let server: RunningServer;
  let apiKey: string;
  beforeAll(async () => {
    f = await openServerFixture(backend, [wf], { worker: false });
    server = await startServer(f.app, { port: 0 });
    apiKey = f.auth.authorization!.slice('Bearer '.length);
  });
  afterAll(async () => {
    await server?.close();
    await f?.close();
  });

  it('creates, lists and deletes a schedule', async () => {
    const created = await capture(() =>
      runSchedulesCreate('cli-sched', {
        url: server.url,
        apiKey,
        cron: '0 3 1 1 *',
        timezone: 'America/New_York',
        inputMode: 'previous_step_output',
        step: 'fetch',
        overlap: 'skip',
        catchUp: 'last',
        catchUpLimit: '4',
      }),
    );
    const id = /Created schedule (sch_\S+):/.exec(created)?.[1];
    expect(id, created).toBeDefined();
    expect(created).toContain('input previous_step_output');
    const [row] = await f.db.stores.schedules.listSchedules(f.environmentId);
    expect(row).toMatchObject({
      id,
      cron: '0 3 1 1 *',
      timezone: 'America/New_York',
      input: { mode: 'previous_step_output', step: 'fetch' },
      overlap: 'skip',
      catchUp: 'last',
      catchUpLimit: 4,
    });

    const listed = await capture(() => runSchedulesList({ url: server.url, apiKey }));
    expect(listed).toMatch(/^ID\s+WORKFLOW\s+CRON/im);
    expect(listed).toContain(id);
    expect(listed).toContain('previous_step_output:fetch');

    const json = await capture(() => runSchedulesList({ url: server.url, apiKey, json: true }));
    expect((JSON.parse(json) as Array<{ id: string }>).map((s) => s.id)).toEqual([id]);

    const deleted = await capture(() => runSchedulesDelete(id!, { url: server.url, apiKey }));
    expect(deleted).toContain(`Deleted schedule ${id}`);
    expect(await f.db.stores.schedules.listSchedules(f.environmentId)).toEqual([]);
  });

  it('passes the API errors through and checks --input locally', async () => {
    await expect(
      runSchedulesCreate('cli-sched', { url: server.url, apiKey, cron: 'nine o clock' }),
    ).rejects.toThrow(/invalid_input.*"nine o clock", which does not parse/s);
    await expect(
      runSchedulesCreate('cli-sched', {
        url: server.url,
        apiKey,
        cron: '0 9 * * *',
        timezone: 'Moon/Base',
      }),
    ).rejects.toThrow(/"Moon\/Base", which is not an IANA time zone/);
    await expect(
      runSchedulesCreate('cli-sched', { url: server.url, apiKey, cron: '0 9 * * *', input: '{a' }),
    ).rejects.toThrow(/--input must be JSON/);
    await expect(runSchedulesDelete('sch_nope', { url: server.url, apiKey })).rejects.toThrow(
      /not_found.*sch_nope/s,
    );
    expect(await f.db.stores.schedules.listSchedules(f.environmentId)).toEqual([]);
  });
});
