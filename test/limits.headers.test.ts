/**
 * Header sizes: Node's HTTP parser caps the request head at `http.maxHeaderSize` (16 KiB by
 * default; `node --max-http-header-size` raises it). Below it a request is served; above it the
 * parser answers 431 before Weft sees anything, and the server goes on serving. Independent of
 * the database, so on PGlite only.
 */
import { maxHeaderSize } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/engine/logger.js';
import { ensureEnvironment } from '../src/engine/tenant.js';
import { createApp, startServer, type RunningServer } from '../src/server/index.js';
import { openTestDatabase, type TestDatabase } from './support/databases.js';

describe('request header sizes', () => {
  let db: TestDatabase;
  let server: RunningServer;
  let token: string;

  beforeAll(async () => {
    db = await openTestDatabase('pglite');
    const environmentId = await ensureEnvironment(db.stores.control, {});
    token = (await db.stores.control.createApiKey(environmentId, 'h')).token;
    const app = createApp({ stores: db.stores, logger: silentLogger(), dashboard: false });
    server = await startServer(app, { port: 0, hostname: '127.0.0.1' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.close();
  });

  const get = (padding: number) =>
    fetch(`${server.url}/api/v1/workflows`, {
      headers: { authorization: `Bearer ${token}`, 'x-padding': 'p'.repeat(padding) },
    });

  it.each([
    ['far below the limit', 1024, 200],
    ['just below the limit', maxHeaderSize - 1024, 200],
    ['just above the limit', maxHeaderSize + 1, 431],
    ['far above the limit', maxHeaderSize * 4, 431],
  ])('a head %s: %i bytes of padding → %i', async (_, padding, status) => {
    expect((await get(padding)).status).toBe(status);
    // and the server still serves the next request
    expect((await get(10)).status).toBe(200);
  });
});
