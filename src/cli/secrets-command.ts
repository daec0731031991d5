/**
 * `weft secrets rotate`: re-seal every webhook secret with the current key (`WEFT_SECRET_KEY`),
 * opening the old ones with `WEFT_SECRET_KEY_PREVIOUS`, so that the previous key can be removed.
 * Safe while servers run (each row changes by a conditional update); run it again any time.
 */
import { WeftError } from '../core/errors.js';
import { PREVIOUS_SECRET_KEY_ENV, SECRET_KEY_ENV } from '../core/secret-box.js';
import { describeTarget, openStores, serverOrDevDatabase } from './database.js';
import { resolveDataDir } from './local-state.js';
import { CliError, printJson } from './output.js';

export interface RotateOptions {
  databaseUrl?: string;
  dataDir?: string;
  json?: boolean;
}

export async function runSecretsRotate(options: RotateOptions): Promise<void> {
  const target = serverOrDevDatabase(options.databaseUrl, resolveDataDir(options.dataDir));
  if (target.kind === 'url' && !process.env[SECRET_KEY_ENV]?.trim())
    throw new CliError(
      `weft secrets rotate needs the new key: set ${SECRET_KEY_ENV} to it, and ${PREVIOUS_SECRET_KEY_ENV} to the key(s) it replaces (comma-separated).`,
    );
  const { stores, close } = await openStores(target, {
    applicationName: 'weft-secrets',
    poolSize: 2,
    lockAs: 'weft secrets rotate',
  });
  try {
    const report = await stores.webhooks.resealSecrets().catch((error: unknown) => {
      throw error instanceof WeftError ? new CliError(error.message) : error;
    });
    const keyId = stores.webhooks.secrets.current?.id;
    if (options.json) printJson({ database: describeTarget(target), keyId, ...report });
    else {
      process.stdout.write(
        `Re-encrypted ${report.resealed} webhook secret${report.resealed === 1 ? '' : 's'} of ${describeTarget(target)} with key ${keyId}.\n`,
      );
      if (report.unreadable.length > 0)
        process.stdout.write(
          `${report.unreadable.length} could not be opened (their key is not in ${SECRET_KEY_ENV} or ${PREVIOUS_SECRET_KEY_ENV}): ${report.unreadable.map((u) => `${u.webhookId} (key ${u.keyId})`).join(', ')}. Add that key to ${PREVIOUS_SECRET_KEY_ENV} and run this again.\n`,
        );
      else if (process.env[PREVIOUS_SECRET_KEY_ENV]?.trim())
        process.stdout.write(
          `Every secret is now under the current key: ${PREVIOUS_SECRET_KEY_ENV} can be removed (after every process has restarted with the new key).\n`,
        );
    }
    if (report.unreadable.length > 0) process.exitCode = 1;
  } finally {
    await close();
  }
}
