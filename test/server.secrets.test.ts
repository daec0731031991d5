/**
 * Webhook secrets at rest: stored sealed (no clear text in the row, the key id beside it), a
 * secret written in clear before control migration 0005 still verifies and is re-sealed when
 * read, a rotation keeps every signed webhook working throughout (new key + previous key, then
 * `resealSecrets`, then the new key alone), and a server without a key refuses to store a secret
 * (503 naming WEFT_SECRET_KEY) but serves everything else.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey, parseSecretKey, SecretBox } from '../src/core/secret-box.js';
import { defineWorkflow } from '../src/index.js';
import { createApp, type ServerApp } from '../src/server/index.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { silentLogger } from '../src/engine/logger.js';
import { BACKENDS } from './support/databases.js';
import { call, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const receive = defineWorkflow<unknown>('receive-signed').step('take', () => null);

const sign = (secret: string, body: string) =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

const oldKey = parseSecretKey(generateSecretKey(), 'old');
const newKey = parseSecretKey(generateSecretKey(), 'new');

describe.each(BACKENDS)('webhook secrets at rest on %s', (backend) => {
  let f: ServerFixture;
  const opened: Stores[] = [];

  beforeAll(async () => {
    f = await openServerFixture(backend, [receive]);
  });
  afterAll(async () => {
    await f?.close();
  });

  /** Another server process over the same database, with its own keys. */
  function serverWith(box: SecretBox): { app: ServerApp; stores: Stores } {
    // Stores over the fixture's executor: closing them would close it, so they are not closed.
    const stores = createStores({ control: f.db.executor, secrets: box });
    opened.push(stores);
    return { app: createApp({ stores, logger: silentLogger(), dashboard: false }), stores };
  }

  const row = async (id: string) =>
    (
      await f.db.executor.query<{ secret: string | null; secret_key_id: string | null }>(
        'select secret, secret_key_id from weft.webhooks where id = $1',
        [id],
      )
    ).rows[0]!;

  async function create(app: ServerApp, body: Record<string, unknown>) {
    const res = await call(app, 'POST', '/api/v1/webhooks', f.auth, {
      workflowId: 'receive-signed',
      ...body,
    });
    return res;
  }

  const deliver = (app: ServerApp, id: string, secret: string) => {
    const body = JSON.stringify({ n: Math.random() });
    return app.request(`/hooks/${id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-weft-signature': sign(secret, body) },
      body,
    });
  };

  it('stores a secret sealed under the current key, never in clear, and verifies signatures with it', async () => {
    const { app } = serverWith(new SecretBox(oldKey));
    const res = await create(app, { secret: 'provider-secret-0123456789' });
    expect(res.status).toBe(201);
    const stored = await row(res.body.id as string);
    expect(stored.secret_key_id).toBe(oldKey.id);
    expect(stored.secret).not.toContain('provider-secret');
    expect(stored.secret).toMatch(/^v1\./);
    expect((await deliver(app, res.body.id as string, 'provider-secret-0123456789')).status).toBe(
      202,
    );
    expect((await deliver(app, res.body.id as string, 'wrong-secret-0123456789')).status).toBe(401);
    // a sealed secret copied onto another webhook does not open there
    const other = await create(app, { signed: true });
    await f.db.executor.query(
      'update weft.webhooks set secret = $2, secret_key_id = $3 where id = $1',
      [other.body.id, stored.secret, stored.secret_key_id],
    );
    const moved = await deliver(app, other.body.id as string, 'provider-secret-0123456789');
    expect(moved.status).toBe(503);
    await f.db.executor.query('delete from weft.webhooks where id = $1', [other.body.id]);
  });

  it('a secret in clear from before migration 0005 verifies, and is re-sealed on first read', async () => {
    const { app, stores } = serverWith(new SecretBox(oldKey));
    const res = await create(app, {});
    const id = res.body.id as string;
    await f.db.executor.query(
      'update weft.webhooks set secret = $2, secret_key_id = null where id = $1',
      [id, 'legacy-clear-secret-000'],
    );
    expect((await deliver(app, id, 'legacy-clear-secret-000')).status).toBe(202);
    for (let i = 0; i < 100 && (await row(id)).secret_key_id === null; i++)
      await new Promise((r) => setTimeout(r, 10));
    const stored = await row(id);
    expect(stored.secret_key_id).toBe(oldKey.id);
    expect(stored.secret).not.toContain('legacy');
    expect((await stores.webhooks.findWebhook(id))?.secret).toBe('legacy-clear-secret-000');
  });

  it('rotates without downtime: new + previous key both verify, resealSecrets moves every secret, then the old key can go', async () => {
    const before = serverWith(new SecretBox(oldKey));
    const created = await create(before.app, { signed: true });
    const id = created.body.id as string;
    const secret = created.body.secret as string;
    expect((await row(id)).secret_key_id).toBe(oldKey.id);

    // deploy with WEFT_SECRET_KEY=new, WEFT_SECRET_KEY_PREVIOUS=old: old servers still run too
    const during = serverWith(new SecretBox(newKey, [oldKey]));
    expect((await deliver(before.app, id, secret)).status).toBe(202);
    expect((await deliver(during.app, id, secret)).status).toBe(202);
    const report = await during.stores.webhooks.resealSecrets();
    expect(report.unreadable).toEqual([]);
    expect(
      (
        await f.db.executor.query<{ n: number }>(
          'select count(*)::int as n from weft.webhooks where secret is not null and secret_key_id is distinct from $1',
          [newKey.id],
        )
      ).rows[0]!.n,
    ).toBe(0);
    // again: nothing left to do
    expect((await during.stores.webhooks.resealSecrets()).resealed).toBe(0);

    const after = serverWith(new SecretBox(newKey));
    expect((await deliver(after.app, id, secret)).status).toBe(202);
    // a process still holding only the old key cannot open it: 503 naming the variable
    const stale = await deliver(before.app, id, secret);
    expect(stale.status).toBe(503);
    const body = (await stale.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('not_ready');
    expect(body.error.message).toContain(newKey.id);
    expect(body.error.message).toContain('WEFT_SECRET_KEY');
  });

  it('without a key: a secret is refused with 503 naming WEFT_SECRET_KEY, unsigned webhooks and the rest are served', async () => {
    const { app } = serverWith(new SecretBox(undefined));
    for (const body of [{ signed: true }, { secret: 'given-secret-0123456789' }]) {
      const res = await create(app, body);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('not_ready');
      expect(res.body.error.message).toContain('WEFT_SECRET_KEY');
    }
    const unsigned = await create(app, {});
    expect(unsigned.status).toBe(201);
    expect(
      (await app.request(`/hooks/${unsigned.body.id}`, { method: 'POST', body: '{}' })).status,
    ).toBe(202);
    expect((await call(app, 'GET', '/api/v1/webhooks', f.auth)).status).toBe(200);
  });
});
