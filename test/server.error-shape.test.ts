/**
 * Regressions of issue 7, on PGlite and PostgreSQL:
 * - a failed run's error was nested twice (`run.error.error.message`): it reads
 *   `run.error.message` now (the nested copy stays, deprecated, without a stack);
 * - no API answer carries a stack with the server's paths: an error Weft raised in a step keeps
 *   its message but not its stack; the stack of the step's own code (user data) stays in the
 *   attempts; an unexpected error is a request id, never a stack;
 * - a request path with control characters was written raw into the dev log (`weft dev`'s pretty
 *   format), forging a log line: it is escaped.
 */
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeForLog, prettyDestination } from '../src/cli/output.js';
import { defineWorkflow } from '../src/index.js';
import { createApp } from '../src/server/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const boom = defineWorkflow('boom').step('explode', { retry: { maxAttempts: 1 } }, () => {
  throw new Error('kaboom from user code');
});
const badOutput = defineWorkflow('bad-output').step(
  'returns-function',
  { retry: { maxAttempts: 1 } },
  () => (() => 1) as unknown as number,
);

describe.each(BACKENDS)('error shapes over HTTP on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [boom, badOutput]);
  });
  afterAll(async () => {
    await f?.close();
  });

  const failedRun = async (workflowId: string) => {
    const created = await call(f.app, 'POST', `/api/v1/workflows/${workflowId}/runs`, f.auth, {});
    await f.engine.waitForRun(created.body.id as string);
    return (await call(f.app, 'GET', `/api/v1/runs/${created.body.id}`, f.auth)).body;
  };

  it('a failed run reads run.error.message (flat), with no stack in the run', async () => {
    const run = await failedRun('boom');
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({
      stepKey: 'explode',
      name: 'Error',
      message: 'kaboom from user code',
      terminal: false,
    });
    expect(JSON.stringify(run)).not.toContain('"stack"');
    // the user's own stack is data: it stays in the attempts
    const steps = (await call(f.app, 'GET', `/api/v1/runs/${run.id}/steps`, f.auth)).body.data;
    expect(steps[0].attempts[0].error.stack).toContain('kaboom from user code');
  });

  it('an error Weft raised in a step shows its message and code, never its stack', async () => {
    const run = await failedRun('bad-output');
    expect(run.error).toMatchObject({ stepKey: 'returns-function', code: 'invalid_output' });
    const steps = await call(f.app, 'GET', `/api/v1/runs/${run.id}/steps`, f.auth);
    expect(steps.body.data[0].attempts[0].error.code).toBe('invalid_output');
    expect(JSON.stringify(steps.body)).not.toContain('"stack"');
    expect(JSON.stringify(steps.body)).not.toContain(process.cwd());
    // nor in the event stream
    const events = await (
      await f.app.request(`/api/v1/runs/${run.id}/events`, { headers: f.auth })
    ).text();
    expect(events).toContain('invalid_output');
    expect(events).not.toContain('"stack"');
  });

  it('an unexpected error answers a request id, not a stack or a path', async () => {
    // a store that fails like a broken database would
    const broken = createApp({
      stores: {
        ...f.db.stores,
        control: new Proxy(f.db.stores.control, {
          get(target, prop, receiver) {
            if (prop === 'listWorkflows')
              return () => Promise.reject(new Error(`ECONNRESET at ${process.cwd()}/x.ts:1:1`));
            return Reflect.get(target, prop, receiver) as unknown;
          },
        }),
      },
      logger: pino({ level: 'silent' }),
      dashboard: false,
    });
    const res = await call(broken, 'GET', '/api/v1/workflows', f.auth);
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('internal');
    expect(JSON.stringify(res.body)).not.toContain(process.cwd());
    expect(JSON.stringify(res.body)).not.toMatch(/\bat .*:\d+:\d+/);
  });

  it('a request path with control characters is one escaped line in the dev log', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    const app = createApp({
      stores: f.db.stores,
      logger: pino({ level: 'info' }, prettyDestination(out)),
      dashboard: false,
    });
    await app.request('/api/v1/nothing%0A12:00:00%20ERROR%20forged%1B[31m%E2%80%A8', {
      headers: f.auth,
    });
    const lines = text.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('http request');
    expect(lines[0]).toContain('\\n12:00:00');
    expect(text).not.toContain('\u001b');
    expect(text).not.toContain('\u2028');
  });
});

describe('escapeForLog', () => {
  it('escapes C0, C1, DEL and the line separators; leaves text alone', () => {
    expect(escapeForLog('a\nb\r\u0000\u001b\u007f\u009b\u2028\u2029é🙂')).toBe(
      'a\\u000ab\\u000d\\u0000\\u001b\\u007f\\u009b\\u2028\\u2029é🙂',
    );
    expect(escapeForLog('line\nnext', { keepNewlines: true })).toBe('line\n    next');
  });
});
