/**
 * The local folder of `weft dev` (default `./.weft`): the PGlite database in `db/`, the dev API
 * key in `dev.json` (mode 0600, so restarts reuse the key and `weft trigger` finds the server),
 * and `dev.lock` while a `weft dev` process owns the database. PGlite is one process's database:
 * a second process opening the same folder would corrupt it, so everything that opens it checks
 * the lock first.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { CliError } from './output.js';

export const DEFAULT_DATA_DIR = '.weft';

export interface DevState {
  /** Base URL of the running (or last) dev server, e.g. `http://127.0.0.1:3700`. */
  url: string;
  apiKey: string;
  keyId: string;
  environmentId: string;
  /** pid of the `weft dev` process that wrote the URL. */
  pid: number;
  updatedAt: string;
}

export function resolveDataDir(option: string | undefined): string {
  return resolve(option || process.env.WEFT_DATA_DIR || DEFAULT_DATA_DIR);
}

/** How to show a path to the user: relative to the cwd when it is below it. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

export const databaseDir = (dataDir: string): string => join(dataDir, 'db');
const statePath = (dataDir: string): string => join(dataDir, 'dev.json');
const lockPath = (dataDir: string): string => join(dataDir, 'dev.lock');

export function readDevState(dataDir: string): DevState | undefined {
  let text: string;
  try {
    text = readFileSync(statePath(dataDir), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as Partial<DevState>;
    if (typeof state.url === 'string' && typeof state.apiKey === 'string') return state as DevState;
  } catch {
    // fall through: a damaged file is treated as absent (weft dev rewrites it)
  }
  return undefined;
}

/** Written to a temporary file and renamed, so a reader never sees half a file. Mode 0600: it holds a key. */
export function writeDevState(dataDir: string, state: DevState): void {
  mkdirSync(dataDir, { recursive: true });
  const tmp = `${statePath(dataDir)}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, statePath(dataDir));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of the live `weft dev` process that holds the folder, if any (a stale lock is ignored). */
export function lockHolder(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(lockPath(dataDir), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)
      ? pid
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Take the folder for this process. A live holder is an error that names it; a lock left by a
 * process that died is taken over. Returns the release function.
 */
export function acquireDataDirLock(dataDir: string, what: string): () => void {
  const holder = lockHolder(dataDir);
  if (holder !== undefined) {
    throw new CliError(
      `${displayPath(dataDir)} is in use by \`weft dev\` (pid ${holder}). PGlite allows one process per data folder: stop that process first${what === 'weft dev' ? ', or pass --data-dir to use another folder' : ', or run this command against a server database with DATABASE_URL'}.`,
    );
  }
  mkdirSync(dataDir, { recursive: true });
  try {
    writeFileSync(lockPath(dataDir), `${process.pid}\n`, { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Checked above: the file belongs to a process that is gone (or to a racer that just won).
    if (lockHolder(dataDir) !== undefined) return acquireDataDirLock(dataDir, what);
    writeFileSync(lockPath(dataDir), `${process.pid}\n`);
  }
  return () => {
    try {
      if (readFileSync(lockPath(dataDir), 'utf8').trim() === String(process.pid))
        rmSync(lockPath(dataDir));
    } catch {
      // already gone
    }
  };
}
