/**
 * `weft secrets rotate` on PostgreSQL: with the new key in WEFT_SECRET_KEY and the old one in
 * WEFT_SECRET_KEY_PREVIOUS it re-seals every webhook secret (a clear one from before migration 0005
 * too) and says the previous key can go; a secret whose key is not given is reported and the exit
 * code is 1; without WEFT_SECRET_KEY it refuses before touching the database.
 */
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey, parseSecretKey, SecretBox } from '../src/core/secret-box.js';
import { ensureEnvironment } from '../src/engine/tenant.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { createPgDatabase } from './support/databases.js';
import { runCli } from './support/cli-process.js';

const oldHex = generateSecretKey();
const newHex = generateSecretKey();
const strayHex = generateSecretKey();

describe('weft secrets rotate', () => {
  let url: string;
  let drop: () => Promise<void>;
  let stores: Stores;
  let environmentId: string;

  beforeAll(async () => {
    ({ url, drop } = await createPgDatabase('secrets'));
    stores = createStores({
      control: createPgExecutor({ connectionString: url, max: 2 }),
      secrets: new SecretBox(parseSecretKey(oldHex, 'old')),
    });
    await stores.migrate();
    environmentId = await ensureEnvironment(stores.control, {});
  });
  afterAll(async () => {
    await stores?.close();
    await drop?.();
  });

  const keyIds = async () =>
    (
      await stores.controlDb.query<{ secret_key_id: string | null }>(
        'select secret_key_id from weft.webhooks where secret is not null order by id',
      )
    ).rows.map((r) => r.secret_key_id);

  it('refuses without WEFT_SECRET_KEY, naming both variables', async () => {
    const result = await runCli(['secrets', 'rotate', '--database-url', url], { cwd: tmpdir() });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('WEFT_SECRET_KEY');
    expect(result.stderr).toContain('WEFT_SECRET_KEY_PREVIOUS');
  });

  it('re-seals old-key and clear secrets with the new key; reports a secret of an unknown key', async () => {
    await stores.webhooks.createWebhook({ environmentId, workflowId: 'w', secret: 'a'.repeat(20) });
    const clear = await stores.webhooks.createWebhook({ environmentId, workflowId: 'w' });
    await stores.controlDb.query(
      'update weft.webhooks set secret = $2, secret_key_id = null where id = $1',
      [clear.id, 'b'.repeat(20)],
    );
    const env = { WEFT_SECRET_KEY: newHex, WEFT_SECRET_KEY_PREVIOUS: oldHex };
    const result = await runCli(['secrets', 'rotate', '--database-url', url], {
      cwd: tmpdir(),
      env,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Re-encrypted 2 webhook secrets');
    expect(result.stdout).toContain('WEFT_SECRET_KEY_PREVIOUS can be removed');
    const newId = parseSecretKey(newHex, 'new').id;
    expect(await keyIds()).toEqual([newId, newId]);
    const reader = createStores({
      control: stores.controlDb,
      secrets: new SecretBox(parseSecretKey(newHex, 'new')),
    });
    expect((await reader.webhooks.getWebhook(environmentId, clear.id))?.secret).toBe(
      'b'.repeat(20),
    );

    // a secret sealed with a key the command is not given
    const stray = createStores({
      control: stores.controlDb,
      secrets: new SecretBox(parseSecretKey(strayHex, 'stray')),
    });
    await stray.webhooks.createWebhook({ environmentId, workflowId: 'w', secret: 'c'.repeat(20) });
    const again = await runCli(['secrets', 'rotate', '--database-url', url, '--json'], {
      cwd: tmpdir(),
      env,
    });
    expect(again.code).toBe(1);
    const report = JSON.parse(again.stdout) as {
      resealed: number;
      unreadable: Array<{ keyId: string }>;
    };
    expect(report.resealed).toBe(0);
    expect(report.unreadable.map((u) => u.keyId)).toEqual([parseSecretKey(strayHex, 's').id]);
  });
});
