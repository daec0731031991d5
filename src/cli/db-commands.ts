/**
 * Commands that work on the database directly: `weft migrate` and `weft keys`. Keys are an
 * operator's business (creating one is how the first API client gets in), so they do not go
 * through the API.
 */
import { ensureEnvironment } from '../engine/tenant.js';
import {
  describeTarget,
  openStores,
  serverDatabase,
  serverOrDevDatabase,
  type DatabaseTarget,
} from './database.js';
import { resolveDataDir } from './local-state.js';
import { CliError, formatTable, formatTime, printJson } from './output.js';

export interface MigrateOptions {
  databaseUrl?: string;
  json?: boolean;
}

export async function runMigrate(options: MigrateOptions): Promise<void> {
  const target = serverDatabase(options.databaseUrl, 'migrate');
  const { stores, close } = await openStores(target, {
    applicationName: 'weft-migrate',
    poolSize: 2,
  });
  try {
    let applied: string[];
    try {
      applied = await stores.migrate();
    } catch (error) {
      throw new CliError(`migrating ${describeTarget(target)} failed: ${(error as Error).message}`);
    }
    if (options.json) printJson({ database: describeTarget(target), applied });
    else if (applied.length === 0)
      process.stdout.write(`${describeTarget(target)} is up to date; nothing to apply.\n`);
    else
      process.stdout.write(
        `Applied ${applied.length} migration${applied.length === 1 ? '' : 's'} to ${describeTarget(target)}:\n${applied.map((a) => `  ${a}`).join('\n')}\n`,
      );
  } finally {
    await close();
  }
}

export interface KeysOptions {
  databaseUrl?: string;
  dataDir?: string;
  project: string;
  environment: string;
  json?: boolean;
}

function keysTarget(options: KeysOptions): DatabaseTarget {
  return serverOrDevDatabase(options.databaseUrl, resolveDataDir(options.dataDir));
}

/**
 * Open the database for a keys command. On a server the schema must already be migrated; the
 * dev folder is migrated here (it is what `weft dev` would do on start).
 */
async function withStores<T>(
  options: KeysOptions,
  fn: (opened: Awaited<ReturnType<typeof openStores>>, target: DatabaseTarget) => Promise<T>,
): Promise<T> {
  const target = keysTarget(options);
  const opened = await openStores(target, { applicationName: 'weft-keys', poolSize: 2 });
  try {
    if (target.kind === 'dev') await opened.stores.migrate();
    else if (!(await opened.stores.isReady()))
      throw new CliError(
        `the database ${describeTarget(target)} is not migrated: run \`weft migrate\` first.`,
      );
    return await fn(opened, target);
  } finally {
    await opened.close();
  }
}

export async function runKeysCreate(options: KeysOptions & { label?: string }): Promise<void> {
  await withStores(options, async ({ stores }, target) => {
    const environmentId = await ensureEnvironment(stores.control, {
      project: options.project,
      environment: options.environment,
    });
    const key = await stores.control.createApiKey(environmentId, options.label);
    if (options.json) {
      printJson({
        id: key.id,
        token: key.token,
        environment: `${options.project}/${options.environment}`,
        label: options.label ?? null,
      });
      return;
    }
    process.stdout.write(
      [
        `Created API key ${key.id} for ${options.project}/${options.environment} in ${describeTarget(target)}${options.label ? ` (label "${options.label}")` : ''}.`,
        '',
        `  ${key.token}`,
        '',
        'It is shown only this once (only its hash is stored). Use it as `Authorization: Bearer <key>`, or WEFT_API_KEY for the weft CLI.',
        `Revoke it with: weft keys revoke ${key.id}`,
        '',
      ].join('\n'),
    );
  });
}

export async function runKeysRevoke(keyId: string, options: KeysOptions): Promise<void> {
  await withStores(options, async ({ stores }, target) => {
    const revoked = await stores.control.revokeApiKey(keyId);
    if (!revoked)
      throw new CliError(
        `no active API key ${keyId} in ${describeTarget(target)} (unknown, or already revoked). \`weft keys list\` shows the keys.`,
      );
    if (options.json) printJson({ id: keyId, revoked: true });
    else
      process.stdout.write(
        `Revoked API key ${keyId}. Requests with it now get 401 (servers may accept it for up to a few seconds while their cache expires).\n`,
      );
  });
}

export async function runKeysList(options: KeysOptions): Promise<void> {
  await withStores(options, async ({ stores }) => {
    const environmentId = await stores.control.findEnvironmentByName(
      options.project,
      options.environment,
    );
    const keys = environmentId ? await stores.control.listApiKeys(environmentId) : [];
    if (options.json) {
      printJson({ data: keys });
      return;
    }
    if (keys.length === 0) {
      process.stdout.write(
        `No API keys in ${options.project}/${options.environment}. Create one with \`weft keys create\`.\n`,
      );
      return;
    }
    process.stdout.write(
      `${formatTable(
        ['id', 'prefix', 'label', 'created', 'revoked'],
        keys.map((k) => [
          k.id,
          `${k.prefix}…`,
          k.label,
          formatTime(k.createdAt),
          formatTime(k.revokedAt),
        ]),
      )}\n`,
    );
  });
}
