/**
 * Webhooks: POST /hooks/{id} turns the HTTP request into a run's input dataclip (no API key; the
 * id is the capability), optional HMAC signatures, size limits before anything is written,
 * idempotent deliveries, and the key-scoped management routes.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { WEBHOOK_ID_PATTERN } from '../src/store/webhook-store.js';
import { BACKENDS } from './support/databases.js';
import {
  allRunIds,
  call,
  openServerFixture,
  type ServerFixture,
} from './support/server-fixture.js';

const MAX_BODY = 4096;

const receive = defineWorkflow<{ body: unknown }>('receive').step('take', (req) => ({
  got: req.body,
}));
const other = defineWorkflow<unknown>('other').step('noop', () => null);

const sign = (secret: string, body: string | Uint8Array) =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

describe.each(BACKENDS)('webhooks on %s', (backend) => {
  let f: ServerFixture;
  let before: string[];

  beforeAll(async () => {
    f = await openServerFixture(backend, [receive, other], { maxBodyBytes: MAX_BODY });
  });
  afterAll(async () => {
    await f?.close();
  });
  beforeEach(async () => {
    before = await allRunIds(f.db, f.environmentId);
  });

  async function createHook(body: Record<string, unknown> = { workflowId: 'receive' }) {
    const res = await call(f.app, 'POST', '/api/v1/webhooks', f.auth, body);
    expect(res.status).toBe(201);
    return res.body as { id: string; path: string; secret: string | null; signed: boolean };
  }

  const post = (
    path: string,
    init: { headers?: Record<string, string>; body?: string | Uint8Array } = {},
  ) => f.app.request(path, { method: 'POST', headers: init.headers ?? {}, body: init.body });

  async function expectNothingWritten() {
    expect(await allRunIds(f.db, f.environmentId)).toEqual(before);
  }

  it('mints unguessable ids: a time-ordered head and 130 fresh random bits', async () => {
    const a = await createHook();
    const b = await createHook();
    expect(a.id).toMatch(WEBHOOK_ID_PATTERN);
    expect(a.path).toBe(`/hooks/${a.id}`);
    // Minted back to back: the heads may be consecutive, the random tails are unrelated.
    expect(a.id.slice(-26)).not.toBe(b.id.slice(-26));
    expect(a.secret).toBeNull();
    expect(a.signed).toBe(false);
  });

  it('turns the request into the input dataclip (kind webhook_request) and answers 202 at once', async () => {
    const hook = await createHook();
    const res = await post(`${hook.path}?a=1&tag=x&tag=y`, {
      headers: {
        'content-type': 'application/json',
        'x-custom': 'yes',
        authorization: 'Bearer do-not-store',
        cookie: 'session=secret',
        connection: 'keep-alive, x-hop',
        'x-hop': 'also hop-by-hop',
      },
      body: JSON.stringify({ order: 42, items: ['a'] }),
    });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { runId: string; status: string; deduplicated: boolean };
    expect(accepted).toMatchObject({ deduplicated: false });
    expect(accepted.runId).toMatch(/^run_/);
    const run = await f.db.stores.runs.getRun(f.environmentId, accepted.runId);
    expect(run?.trigger).toEqual({ kind: 'webhook', ref: hook.id });
    const input = await f.db.stores.runs.getDataclip(f.environmentId, run!.inputDataclipId!);
    expect(input?.kind).toBe('webhook_request');
    const body = input!.body as {
      method: string;
      headers: Record<string, string>;
      query: Record<string, unknown>;
      body: unknown;
    };
    expect(Object.keys(body).sort()).toEqual(['body', 'headers', 'method', 'query']);
    expect(body.method).toBe('POST');
    expect(body.query).toEqual({ a: '1', tag: ['x', 'y'] });
    expect(body.body).toEqual({ order: 42, items: ['a'] });
    expect(body.headers['x-custom']).toBe('yes');
    expect(body.headers['content-type']).toBe('application/json');
    for (const dropped of ['authorization', 'cookie', 'connection', 'x-hop'])
      expect(body.headers).not.toHaveProperty(dropped);
    const done = await f.engine.waitForRun(accepted.runId);
    expect(done.status).toBe('succeeded');
    const final = await f.db.stores.runs.getDataclip(f.environmentId, done.finalDataclipId!);
    expect(final?.body).toEqual({ got: { order: 42, items: ['a'] } });
  });

  it('keeps the capability out of the access log', async () => {
    const hook = await createHook();
    f.logs.length = 0;
    expect((await post(hook.path, { body: 'x' })).status).toBe(202);
    const line = f.logs.find((l) => l.msg === 'http request' && l.method === 'POST');
    expect(line?.path).toBe(`/hooks/${hook.id.slice(0, 15)}…`);
    expect(JSON.stringify(f.logs)).not.toContain(hook.id);
  });

  it('stores non-JSON bodies as text, and an empty body as null', async () => {
    const hook = await createHook();
    const form = await post(hook.path, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'a=1&b=2',
    });
    expect(form.status).toBe(202);
    const empty = await post(hook.path);
    expect(empty.status).toBe(202);
    for (const [res, expected] of [
      [form, 'a=1&b=2'],
      [empty, null],
    ] as const) {
      const { runId } = (await res.json()) as { runId: string };
      const run = await f.db.stores.runs.getRun(f.environmentId, runId);
      const input = await f.db.stores.runs.getDataclip(f.environmentId, run!.inputDataclipId!);
      expect((input!.body as { body: unknown }).body).toEqual(expected);
    }
  });

  it('refuses malformed JSON (400) and binary bodies (415) without writing', async () => {
    const hook = await createHook();
    const bad = await post(hook.path, {
      headers: { 'content-type': 'application/json' },
      body: '{"a":',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('bad_request');
    const binary = await post(hook.path, {
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([0xff, 0xfe, 0x00, 0x80]),
    });
    expect(binary.status).toBe(415);
    await expectNothingWritten();
  });

  describe('signatures', () => {
    const payload = JSON.stringify({ event: 'paid' });

    it('accepts a request signed with the generated secret', async () => {
      const hook = await createHook({ workflowId: 'receive', signed: true });
      expect(hook.signed).toBe(true);
      expect(hook.secret).toMatch(/^whsec_[0-9A-Za-z]{32}$/);
      const res = await post(hook.path, {
        headers: {
          'content-type': 'application/json',
          'x-weft-signature': sign(hook.secret!, payload),
        },
        body: payload,
      });
      expect(res.status).toBe(202);
      // The list never shows the secret again.
      const list = await call(f.app, 'GET', '/api/v1/webhooks', f.auth);
      const listed = list.body.data.find((h: { id: string }) => h.id === hook.id);
      expect(listed).toMatchObject({ signed: true });
      expect(listed).not.toHaveProperty('secret');
    });

    it('accepts a secret given at creation, with an uppercase hex digest', async () => {
      const secret = 'provider-given-secret-123';
      const hook = await createHook({ workflowId: 'receive', secret });
      expect(hook.secret).toBe(secret);
      const res = await post(hook.path, {
        headers: {
          'x-weft-signature': sign(secret, payload).toUpperCase().replace('SHA256=', 'sha256='),
        },
        body: payload,
      });
      expect(res.status).toBe(202);
    });

    it.each([
      ['missing', undefined, 'missing'],
      ['malformed', 'md5=abc', 'malformed'],
      ['wrong secret', 'WRONG', 'mismatch'],
      ['another body’s', 'OTHER_BODY', 'mismatch'],
    ] as const)(
      'refuses a %s signature with 401 invalid_signature and writes nothing',
      async (_, kind, reason) => {
        const hook = await createHook({ workflowId: 'receive', signed: true });
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (kind === 'WRONG') headers['x-weft-signature'] = sign('whsec_not-the-secret', payload);
        else if (kind === 'OTHER_BODY')
          headers['x-weft-signature'] = sign(hook.secret!, `${payload} `);
        else if (kind !== undefined) headers['x-weft-signature'] = kind;
        const res = await post(hook.path, { headers, body: payload });
        expect(res.status).toBe(401);
        const body = (await res.json()) as {
          error: { code: string; message: string; details: { reason: string } };
        };
        expect(body.error.code).toBe('invalid_signature');
        expect(body.error.details.reason).toBe(reason);
        expect(body.error.message).toMatch(/HMAC-SHA256/);
        expect(res.headers.get('www-authenticate')).toBeNull();
        await expectNothingWritten();
      },
    );
  });

  it('answers 413 for an oversized body, declared or streamed, and writes nothing', async () => {
    const hook = await createHook();
    const big = 'x'.repeat(MAX_BODY + 1);
    const declared = await post(hook.path, {
      headers: { 'content-type': 'text/plain', 'content-length': String(big.length) },
      body: big,
    });
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { error: { code: string } }).error.code).toBe(
      'payload_too_large',
    );
    // No content-length: the limit is enforced on the bytes as they arrive.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(new TextEncoder().encode('y'.repeat(1024)));
        controller.close();
      },
    });
    const streamed = await f.app.request(hook.path, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    await expectNothingWritten();
  });

  it('answers 404 for unknown, malformed, deleted and disabled webhooks, writing nothing', async () => {
    const deleted = await createHook();
    expect((await call(f.app, 'DELETE', `/api/v1/webhooks/${deleted.id}`, f.auth)).status).toBe(
      204,
    );
    const disabled = await createHook();
    const off = await call(f.app, 'PATCH', `/api/v1/webhooks/${disabled.id}`, f.auth, {
      enabled: false,
    });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ id: disabled.id, enabled: false });
    const unknown = `hook_${'0'.repeat(52)}`;
    for (const path of [
      `/hooks/${unknown}`,
      '/hooks/not-a-hook',
      `/hooks/${deleted.id}`,
      `/hooks/${disabled.id}`,
      `/hooks/${'x'.repeat(5000)}`,
    ]) {
      const res = await post(path, { headers: { 'content-type': 'application/json' }, body: '{}' });
      expect({ path: path.slice(0, 40), status: res.status }).toEqual({
        path: path.slice(0, 40),
        status: 404,
      });
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('not_found');
      // The id is not echoed whole (it may be someone's capability, pasted wrong).
      expect(body.error.message).not.toContain(disabled.id);
    }
    await expectNothingWritten();
  });

  it('dedups deliveries by the idempotency-key header, even when headers differ', async () => {
    const hook = await createHook();
    const first = await post(hook.path, {
      headers: { 'idempotency-key': 'evt_1', 'content-type': 'application/json', 'x-attempt': '1' },
      body: '{"n":1}',
    });
    expect(first.status).toBe(202);
    const { runId } = (await first.json()) as { runId: string };
    const again = await post(hook.path, {
      headers: { 'idempotency-key': 'evt_1', 'content-type': 'application/json', 'x-attempt': '2' },
      body: '{"n":1}',
    });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ runId, deduplicated: true });
    const other = await post(hook.path, {
      headers: { 'idempotency-key': 'evt_2', 'content-type': 'application/json' },
      body: '{"n":1}',
    });
    expect(other.status).toBe(202);
    expect(((await other.json()) as { runId: string }).runId).not.toBe(runId);
    // The same key on another webhook is another delivery.
    const hook2 = await createHook();
    const elsewhere = await post(hook2.path, { headers: { 'idempotency-key': 'evt_1' } });
    expect(elsewhere.status).toBe(202);
    expect((await allRunIds(f.db, f.environmentId)).length).toBe(before.length + 3);
  });

  it('does not list the environment’s workflows to an unauthenticated caller', async () => {
    await f.engine.register(defineWorkflow<unknown>('gone').step('s', () => null));
    const hook = await createHook({ workflowId: 'gone' });
    // The workflow leaves the environment (deleted directly: there is no API for it).
    await f.db.executor.query(
      `delete from weft.workflows where environment_id = $1 and id = 'gone'`,
      [f.environmentId],
    );
    const res = await post(hook.path, { body: 'x' });
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('unknown_workflow');
    expect(body.error.message).toContain('"gone"');
    expect(body.error.message).not.toMatch(/receive|other/);
    await expectNothingWritten();
  });

  describe('management routes', () => {
    it('disables, re-enables and relabels a webhook, keeping its id and secret', async () => {
      const hook = await createHook({ workflowId: 'receive', signed: true, label: 'a' });
      const signed = { 'x-weft-signature': sign(hook.secret!, 'x') };
      const path = `/api/v1/webhooks/${hook.id}`;
      expect((await call(f.app, 'PATCH', path, f.auth, { enabled: false })).status).toBe(200);
      expect((await post(hook.path, { headers: signed, body: 'x' })).status).toBe(404);
      const on = await call(f.app, 'PATCH', path, f.auth, { enabled: true, label: 'b' });
      expect(on.body).toMatchObject({ enabled: true, label: 'b', signed: true });
      expect((await post(hook.path, { headers: signed, body: 'x' })).status).toBe(202);
      const cleared = await call(f.app, 'PATCH', path, f.auth, { label: null });
      expect(cleared.body).toMatchObject({ enabled: true, label: null });
      const typo = await call(f.app, 'PATCH', path, f.auth, { enable: false });
      expect(typo.status).toBe(400);
      const unknown = await call(
        f.app,
        'PATCH',
        `/api/v1/webhooks/hook_${'0'.repeat(52)}`,
        f.auth,
        {
          enabled: false,
        },
      );
      expect(unknown.status).toBe(404);
    });

    it('creates only for registered workflows, with a strict body', async () => {
      const unknown = await call(f.app, 'POST', '/api/v1/webhooks', f.auth, { workflowId: 'nope' });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.code).toBe('unknown_workflow');
      expect(unknown.body.error.message).toContain('`receive`');
      const typo = await call(f.app, 'POST', '/api/v1/webhooks', f.auth, {
        workflowId: 'receive',
        sigend: true,
      });
      expect(typo.status).toBe(400);
      const short = await call(f.app, 'POST', '/api/v1/webhooks', f.auth, {
        workflowId: 'receive',
        secret: 'short',
      });
      expect(short.status).toBe(400);
    });

    it('scopes list and delete to the key’s environment (the key matrix)', async () => {
      const hook = await createHook({ workflowId: 'receive', label: 'mine' });
      for (const other of [f.sibling, f.foreign]) {
        const list = await call(f.app, 'GET', '/api/v1/webhooks', other.auth);
        expect(list.status).toBe(200);
        expect(list.body.data.map((h: { id: string }) => h.id)).not.toContain(hook.id);
        const del = await call(f.app, 'DELETE', `/api/v1/webhooks/${hook.id}`, other.auth);
        expect(del.status).toBe(404);
        const patch = await call(f.app, 'PATCH', `/api/v1/webhooks/${hook.id}`, other.auth, {
          enabled: false,
        });
        expect(patch.status).toBe(404);
      }
      // Another environment cannot create a webhook for a workflow it does not have.
      const foreign = await call(f.app, 'POST', '/api/v1/webhooks', f.foreign.auth, {
        workflowId: 'receive',
      });
      expect(foreign.status).toBe(404);
      for (const caller of f.unauthorized) {
        for (const [method, path, body] of [
          ['GET', '/api/v1/webhooks', undefined],
          ['POST', '/api/v1/webhooks', { workflowId: 'receive' }],
          ['DELETE', `/api/v1/webhooks/${hook.id}`, undefined],
          ['PATCH', `/api/v1/webhooks/${hook.id}`, { enabled: false }],
        ] as const) {
          const res = await call(f.app, method, path, caller.headers, body);
          expect({
            caller: caller.name,
            method,
            status: res.status,
            reason: res.body.error?.details?.reason,
          }).toEqual({
            caller: caller.name,
            method,
            status: 401,
            reason: caller.reason,
          });
        }
      }
      const mine = await call(f.app, 'GET', '/api/v1/webhooks', f.auth);
      expect(mine.body.data.find((h: { id: string }) => h.id === hook.id)).toMatchObject({
        workflowId: 'receive',
        label: 'mine',
        enabled: true,
        signed: false,
        path: hook.path,
      });
      expect((await call(f.app, 'DELETE', `/api/v1/webhooks/${hook.id}`, f.auth)).status).toBe(204);
      expect((await call(f.app, 'DELETE', `/api/v1/webhooks/${hook.id}`, f.auth)).status).toBe(404);
    });
  });
});
