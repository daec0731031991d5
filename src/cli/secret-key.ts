/**
 * The key that seals secrets at rest in `weft dev` (src/core/secret-box.ts): `WEFT_SECRET_KEY`
 * when set, else a generated key kept in `<data folder>/secret.key` (mode 0600, next to the
 * database it protects: it guards against a copied database or backup, not against someone who
 * can read the folder).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../core/errors.js';
import { generateSecretKey, SECRET_KEY_ENV, SecretBox } from '../core/secret-box.js';
import { displayPath } from './local-state.js';
import { CliError } from './output.js';

export const DEV_SECRET_KEY_FILE = 'secret.key';

/**
 * The keys of a dev folder: `WEFT_SECRET_KEY` when set, else the folder's own key, made on first
 * use. `WEFT_SECRET_KEY_PREVIOUS` opens older values either way.
 */
export function devSecretBox(dataDir: string, env = process.env): SecretBox {
  try {
    if (env[SECRET_KEY_ENV]?.trim()) return SecretBox.fromEnv(env);
    const file = join(dataDir, DEV_SECRET_KEY_FILE);
    if (!existsSync(file)) {
      mkdirSync(dataDir, { recursive: true });
      // wx: two processes racing to create it keep the first one's key
      try {
        writeFileSync(file, `${generateSecretKey()}\n`, { mode: 0o600, flag: 'wx' });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    return SecretBox.fromEnv(env, readFileSync(file, 'utf8').trim());
  } catch (error) {
    if (error instanceof WeftError)
      throw new CliError(`${error.message} (${displayPath(join(dataDir, DEV_SECRET_KEY_FILE))})`);
    throw error;
  }
}
