/**
 * Dataclips over HTTP: bodies and sizes, wiped bodies when a project does not save dataclips,
 * and 404 for anything that is not a dataclip of the key's environment.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const shape = defineWorkflow<{ items: number[] }>('shape').step('count', ({ items }) => ({
  count: items.length,
  emoji: '✓ 🧵',
}));

describe.each(BACKENDS)('dataclips over HTTP on %s', (backend) => {
  let f: ServerFixture;
  let run: { id: string; inputDataclipId: string; finalDataclipId: string };

  beforeAll(async () => {
    f = await openServerFixture(backend, [shape]);
    const res = await call(f.app, 'POST', '/api/v1/workflows/shape/runs', f.auth, {
      input: { items: [1, 2, 3] },
    });
    const done = await f.engine.waitForRun(res.body.id);
    run = {
      id: done.id,
      inputDataclipId: done.inputDataclipId!,
      finalDataclipId: done.finalDataclipId!,
    };
  });
  afterAll(async () => {
    await f?.close();
  });

  it('returns the input dataclip as stored', async () => {
    const res = await call(f.app, 'GET', `/api/v1/dataclips/${run.inputDataclipId}`, f.auth);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      id: run.inputDataclipId,
      runId: run.id,
      kind: 'input',
      body: { items: [1, 2, 3] },
      sizeBytes: expect.any(Number),
      wipedAt: null,
      createdAt: expect.any(String),
    });
    expect(res.body.sizeBytes).toBeGreaterThan(10);
  });

  it('returns a step output with non-ASCII text intact', async () => {
    const res = await call(f.app, 'GET', `/api/v1/dataclips/${run.finalDataclipId}`, f.auth);
    expect(res.body).toMatchObject({ kind: 'output', body: { count: 3, emoji: '✓ 🧵' } });
  });

  it('answers 422 naming `dataclipId` for an id with a NUL byte', async () => {
    const res = await call(f.app, 'GET', '/api/v1/dataclips/dc_a0%00', f.auth);
    expect({ status: res.status, code: res.body.error.code }).toEqual({
      status: 422,
      code: 'invalid_input',
    });
    expect(res.body.error.message).toContain('`dataclipId`');
  });

  it.each([
    ['a malformed id', 'dc_nope'],
    ['a run id', 'run_a001m7y9khy4p46aqpyr3ef2m5es'],
    ['a well-formed id that does not exist', 'dc_a001m7y9khy4p46aqpyr3ef2m5et'],
  ])('answers 404 for %s', async (_name, id) => {
    const res = await call(f.app, 'GET', `/api/v1/dataclips/${id}`, f.auth);
    expect({ status: res.status, code: res.body.error.code }).toEqual({
      status: 404,
      code: 'not_found',
    });
    expect(res.body.error.message).toMatch(/^Dataclip ".*" does not exist/);
  });
});

describe.each(BACKENDS)('dataclips of a project that does not save them, on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [shape], { saveDataclips: false });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('keeps the metadata, with no body and wipedAt set, once the run ends', async () => {
    const res = await call(f.app, 'POST', '/api/v1/workflows/shape/runs', f.auth, {
      input: { items: [1] },
    });
    const done = await f.engine.waitForRun(res.body.id);
    const input = await call(f.app, 'GET', `/api/v1/dataclips/${done.inputDataclipId}`, f.auth);
    expect(input.status).toBe(200);
    expect(input.body).toMatchObject({ kind: 'input', body: null, wipedAt: expect.any(String) });
    expect(input.body.sizeBytes).toBeGreaterThan(0);
  });
});
