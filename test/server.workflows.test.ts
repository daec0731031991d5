/**
 * Workflows over HTTP: the environment's list, and one workflow's graph and versions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const v1 = defineWorkflow<{ vip: boolean }>('signup', { description: 'New user signup' })
  .step('load', (u) => u)
  .step('welcome', { after: 'load' }, () => 'hi');
const v2 = defineWorkflow<{ vip: boolean }>('signup', { description: 'New user signup' })
  .step('load', { retry: { maxAttempts: 5 }, timeout: 2_000 }, (u) => u)
  .step('gold', { after: { step: 'load', when: (u) => u.vip } }, () => 'gold')
  .step('welcome', { after: 'load', description: 'Send the welcome mail' }, () => 'hi')
  .step('alert', { after: { step: 'welcome', on: 'failure' } }, (failure) => failure.error.message);
const alpha = defineWorkflow<unknown>('alpha').step('s', () => 1);

describe.each(BACKENDS)('workflows over HTTP on %s', (backend) => {
  let f: ServerFixture;
  beforeAll(async () => {
    f = await openServerFixture(backend, [v1, alpha], { worker: false });
    await f.engine.register(v2);
  });
  afterAll(async () => {
    await f?.close();
  });

  it('lists the environment’s workflows by id with their current version', async () => {
    const res = await call(f.app, 'GET', '/api/v1/workflows', f.auth);
    expect(res.status).toBe(200);
    expect(res.body.data.map((w: { id: string }) => w.id)).toEqual(['alpha', 'signup']);
    const signup = res.body.data[1];
    const current = await f.db.stores.control.currentVersion(f.environmentId, 'signup');
    expect(signup).toEqual({
      id: 'signup',
      description: 'New user signup',
      currentVersion: {
        id: current!.id,
        version: 2,
        hash: current!.hash,
        createdAt: current!.createdAt,
      },
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
  });

  it('shows the current graph with its nodes and edges, and every version newest first', async () => {
    const res = await call(f.app, 'GET', '/api/v1/workflows/signup', f.auth);
    expect(res.status).toBe(200);
    expect(res.body.currentVersion.version).toBe(2);
    expect(res.body.versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect(res.body.versions[0].id).toBe(res.body.currentVersion.id);
    const nodes = Object.fromEntries(res.body.graph.nodes.map((n: { id: string }) => [n.id, n]));
    expect(Object.keys(nodes).sort()).toEqual(['alert', 'gold', 'load', 'welcome']);
    expect(nodes.load).toMatchObject({
      kind: 'step',
      maxAttempts: 5,
      timeoutMs: 2000,
      onExhausted: 'fail',
    });
    expect(nodes.welcome.description).toBe('Send the welcome mail');
    expect(nodes.load.hash).toMatch(/^[0-9a-f]{64}$/);
    const edges = res.body.graph.edges.map(
      (e: { from: string; to: string; on: string; when?: string }) =>
        `${e.from}->${e.to}:${e.on}${e.when ? ':when' : ''}`,
    );
    expect(edges.sort()).toEqual(
      ['load->gold:success:when', 'load->welcome:success', 'welcome->alert:failure'].sort(),
    );
    expect(res.body.graph.edges.find((e: { to: string }) => e.to === 'gold').when).toContain('vip');
    expect(res.body.graph.maxPayloadBytes).toBe(10 * 1024 * 1024);
  });

  it('answers 422 naming `workflowId` for an id with a NUL byte', async () => {
    const res = await call(f.app, 'GET', '/api/v1/workflows/sign%00up', f.auth);
    expect({ status: res.status, code: res.body.error.code }).toEqual({
      status: 422,
      code: 'invalid_input',
    });
    expect(res.body.error.message).toContain('`workflowId`');
  });

  it.each([
    ['an unknown id', 'nope', 'nope'],
    ['an id that is too long', 'w'.repeat(300), 'w'.repeat(120)],
  ])('answers 404 for %s, naming it', async (_name, path, named) => {
    const res = await call(f.app, 'GET', `/api/v1/workflows/${path}`, f.auth);
    expect({ status: res.status, code: res.body.error.code }).toEqual({
      status: 404,
      code: 'unknown_workflow',
    });
    expect(res.body.error.message).toContain(JSON.stringify(named).slice(1, -1));
  });

  it('lists the registered workflows in the 404 of an unknown one', async () => {
    const res = await call(f.app, 'GET', '/api/v1/workflows/singup', f.auth);
    expect(res.body.error.message).toContain('`signup`');
  });
});
