/**
 * `weft webhooks create|list|delete` against a real server over a socket, and the printed URL
 * used as a provider would: a signed POST starts a run; after delete the URL answers 404.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  runWebhooksCreate,
  runWebhooksDelete,
  runWebhooksList,
} from '../src/cli/webhooks-commands.js';
import { defineWorkflow } from '../src/index.js';
import { startServer, type RunningServer } from '../src/server/serve.js';
import { BACKENDS } from './support/databases.js';
import { openServerFixture, type ServerFixture } from './support/server-fixture.js';
import { captureStdout as capture } from './support/capture.js';

const wf = defineWorkflow<{ body: { n: number } }>('cli-hook').step(
  'double',
  (req) => req.body.n * 2,
);

describe.each(BACKENDS)('weft webhooks on %s', (backend) => {
  let f: ServerFixture;
  let server: RunningServer;
  let apiKey: string;
  beforeAll(async () => {
    f = await openServerFixture(backend, [wf]);
    server = await startServer(f.app, { port: 0 });
    apiKey = f.auth.authorization!.slice('Bearer '.length);
  });
  afterAll(async () => {
    await server?.close();
    await f?.close();
  });

  it('creates a signed webhook, whose URL starts runs, lists it, and deletes it', async () => {
    const created = JSON.parse(
      await capture(() =>
        runWebhooksCreate('cli-hook', {
          url: server.url,
          apiKey,
          label: 'from the cli',
          signed: true,
          json: true,
        }),
      ),
    ) as { id: string; url: string; secret: string };
    expect(created.url).toBe(`${server.url}/hooks/${created.id}`);
    expect(created.secret).toMatch(/^whsec_/);

    const body = JSON.stringify({ n: 21 });
    const res = await fetch(created.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-weft-signature': `sha256=${createHmac('sha256', created.secret).update(body).digest('hex')}`,
      },
      body,
    });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    const done = await f.engine.waitForRun(runId);
    const final = await f.db.stores.runs.getDataclip(f.environmentId, done.finalDataclipId!);
    expect(final?.body).toBe(42);

    const table = await capture(() => runWebhooksList({ url: server.url, apiKey }));
    expect(table).toMatch(/^ID\s+WORKFLOW\s+SIGNED\s+ENABLED\s+LABEL\s+CREATED/);
    expect(table).toContain(created.id);
    expect(table).toContain('from the cli');

    const deleted = await capture(() => runWebhooksDelete(created.id, { url: server.url, apiKey }));
    expect(deleted).toContain(`Deleted webhook ${created.id}`);
    expect((await fetch(created.url, { method: 'POST', body })).status).toBe(404);
    await expect(runWebhooksDelete(created.id, { url: server.url, apiKey })).rejects.toThrow(
      /not_found: Webhook .* does not exist/,
    );
  });

  it('passes the API’s refusal through for an unknown workflow', async () => {
    await expect(runWebhooksCreate('nope', { url: server.url, apiKey })).rejects.toThrow(
      /unknown_workflow: .*`cli-hook`/,
    );
  });
});
