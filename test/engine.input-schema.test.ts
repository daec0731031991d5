/**
 * A workflow's input schema (`defineWorkflow(id, { input: zodSchema })`): checked at every
 * trigger before anything is written, by the schema stored with the version, on both databases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { compileWorkflow } from '../src/core/graph.js';
import { defineWorkflow, WeftError } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import {
  allRunIds,
  call,
  openServerFixture,
  type ServerFixture,
} from './support/server-fixture.js';

const Signup = z.object({
  email: z.string().includes('@'),
  name: z.string().min(1),
  plan: z.enum(['free', 'pro']).optional(),
  tags: z.array(z.string()).max(3).optional(),
});
const seen: unknown[] = [];
const signup = defineWorkflow('signup', { input: Signup }).step('greet', (input) => {
  seen.push(input);
  // typed from the schema: a wrong field here does not compile
  return { hello: input.name, plan: input.plan ?? 'free' };
});
const child = defineWorkflow('child', { input: z.object({ n: z.number().int() }) }).step(
  'double',
  ({ n }) => n * 2,
);
const parent = defineWorkflow<{ n: unknown }>('parent').subWorkflow('call', {
  workflow: 'child',
  input: ({ n }) => ({ n }),
});

describe.each(BACKENDS)('input schema on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [signup, child, parent]);
  });
  afterAll(async () => {
    await f?.close();
  });

  it('refuses a mismatched input at trigger with invalid_input naming each field, and starts no run', async () => {
    const before = await allRunIds(f.db, f.environmentId);
    const error = await f.engine
      .trigger('signup', { email: 42, tags: ['a', 'b', 'c', 'd'] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeftError);
    const e = error as WeftError;
    expect(e.code).toBe('invalid_input');
    expect(e.message).toContain('does not match its input schema');
    expect(e.message).toContain('input.email: Invalid input: expected string, received number');
    expect(e.message).toContain('input.name: missing (expected string)');
    expect(e.message).toContain('input.tags:');
    expect(e.message).toContain('No run was started');
    const details = e.details as { workflowId: string; issues: Array<{ path: string }> };
    expect(details.workflowId).toBe('signup');
    expect(details.issues.map((i) => i.path).sort()).toEqual([
      'input.email',
      'input.name',
      'input.tags',
    ]);
    expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
  });

  it('runs a matching input, handing the root step the input as sent (checked, not rewritten)', async () => {
    seen.length = 0;
    const input = { email: ' Ada@Example.com ', name: 'Ada', extra: true };
    const { run } = await f.engine.trigger('signup', input);
    const done = await f.engine.waitForRun(run.id, { timeoutMs: 15_000 });
    expect(done.status).toBe('succeeded');
    expect(seen).toEqual([input]);
  });

  it('answers 422 over HTTP with the issues, and the trigger with a good input after it works', async () => {
    const before = await allRunIds(f.db, f.environmentId);
    const bad = await call(f.app, 'POST', '/api/v1/workflows/signup/runs', f.auth, {
      input: { email: 'no-at-sign', name: '' },
    });
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe('invalid_input');
    expect(bad.body.error.message).toContain('input.email: Invalid string: must match pattern /@/');
    expect(bad.body.error.details.issues.map((i: { path: string }) => i.path).sort()).toEqual([
      'input.email',
      'input.name',
    ]);
    expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
    const good = await call(f.app, 'POST', '/api/v1/workflows/signup/runs', f.auth, {
      input: { email: 'a@b.co', name: 'A' },
    });
    expect(good.status).toBe(201);
  });

  it('serves the schema with the workflow graph', async () => {
    const res = await call(f.app, 'GET', '/api/v1/workflows/signup', f.auth);
    expect(res.status).toBe(200);
    expect(res.body.graph.inputSchema).toMatchObject({
      type: 'object',
      required: ['email', 'name'],
      properties: { plan: { enum: ['free', 'pro'] } },
    });
  });

  it('refuses a schedule whose static input the schema refuses, at creation', async () => {
    const res = await call(f.app, 'POST', '/api/v1/schedules', f.auth, {
      workflowId: 'signup',
      cron: '0 * * * *',
      input: { mode: 'static', value: { email: 'x@y.z' } },
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('invalid_input');
    expect(res.body.error.message).toContain('input.name');
    const list = await call(f.app, 'GET', '/api/v1/schedules', f.auth);
    expect(list.body.data).toEqual([]);
  });

  it('fails a subWorkflow step whose child input the child refuses, without retrying it', async () => {
    const { run } = await f.engine.trigger('parent', { n: 'seven' });
    const done = await f.engine.waitForRun(run.id, { timeoutMs: 15_000 });
    expect(done.status).toBe('failed');
    const [step] = (await f.db.stores.runs.listStepRuns(f.environmentId, run.id))!;
    const attempts = step!.attempts;
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.error).toMatchObject({ code: 'invalid_input' });
    expect(JSON.stringify(attempts[0]!.error)).toContain('input.n');
    const ok = await f.engine.trigger('parent', { n: 7 });
    expect((await f.engine.waitForRun(ok.run.id, { timeoutMs: 15_000 })).status).toBe('succeeded');
  });
});

describe('input schema at definition', () => {
  it('refuses a schema that JSON Schema cannot express, saying why and what to do', () => {
    const wf = defineWorkflow('t', { input: z.object({ at: z.date() }) }).step('s', (n) => n);
    expect(() => compileWorkflow(wf)).toThrow(
      /options\.input cannot be stored as JSON Schema \(Date cannot be represented in JSON Schema\)/,
    );
    const notZod = defineWorkflow('u', { input: { type: 'object' } as never }).step('s', () => 1);
    expect(() => compileWorkflow(notZod)).toThrow(/expected a zod schema/);
  });

  it('keeps the version hash of a workflow without a schema, and a schema makes a new version', () => {
    const plain = defineWorkflow('h').step('s', () => 1);
    const typed = defineWorkflow('h', { input: z.object({ a: z.number() }) }).step('s', () => 1);
    const retyped = defineWorkflow('h', { input: z.object({ a: z.string() }) }).step('s', () => 1);
    const hashes = [plain, typed, retyped].map((w) => compileWorkflow(w).versionHash);
    expect(new Set(hashes).size).toBe(3);
    // the hash text of a schema-less workflow is what it was before input schemas existed
    expect(compileWorkflow(plain).versionHash).toBe(
      compileWorkflow(defineWorkflow('h', {}).step('s', () => 1)).versionHash,
    );
  });
});
