import { fdatasyncSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { Executor, Queryable, QueryResult } from './executor.js';
import { preparedQueries } from './pglite-prepared.js';

/**
 * How a PGlite data directory reaches the disk.
 * - `fsync` (default with a data directory): PostgreSQL's own rule — the WAL is flushed to the
 *   disk (`fdatasync`) before a commit returns, data files at checkpoints. One flush per commit
 *   (a step's commit is one), measured at ~0.3–0.5 ms on an SSD.
 * - `os`: what PGlite does out of the box: `fsync=off`, and no flush ever reaches the kernel.
 *   Each write is handed to the OS before the statement returns, so a process crash loses
 *   nothing committed, but an OS crash or power loss can lose the last ~30 s of commits (the
 *   kernel's writeback delay) and may leave the folder inconsistent.
 */
export type PgliteDurability = 'fsync' | 'os';

/** The part of PGlite's Emscripten module this file touches (not in PGlite's public types). */
interface EmscriptenModule {
  NODEFS?: { stream_ops: { fsync?: (stream: { nfd?: number }) => number } };
  FS?: { ErrnoError: new (errno: number) => Error };
}

/** PGlite's start parameters minus `-F` (fsync off), with the WAL flushed by `fsync()`. */
function durableStartParams(): string[] {
  const defaults = (PGlite as unknown as { defaultStartParams?: string[] }).defaultStartParams;
  if (!Array.isArray(defaults)) return [];
  // PGlite's fdatasync() is a stub that returns 0 without a call to the OS; its fsync() reaches
  // the file system's stream_ops.fsync, which installFsync makes real.
  return [...defaults.filter((p) => p !== '-F'), '-c', 'wal_sync_method=fsync'];
}

/**
 * Make PostgreSQL's fsync() calls reach the disk. PGlite mounts the data directory with
 * Emscripten's NODEFS, whose streams have no `fsync`: the call is dropped. This gives them one
 * that flushes the node file descriptor. An I/O error is reported to PostgreSQL as EIO (it then
 * stops, as PostgreSQL does when a flush fails: the data on disk is not known); a descriptor that
 * cannot be flushed at all (a directory on some file systems) is skipped. Returns false when the
 * module does not have the expected shape (another PGlite build): nothing is changed then.
 */
function installFsync(db: PGlite): boolean {
  const mod = (db as unknown as { mod?: EmscriptenModule }).mod;
  const ops = mod?.NODEFS?.stream_ops;
  const ErrnoError = mod?.FS?.ErrnoError;
  if (!ops || !ErrnoError) return false;
  ops.fsync = (stream) => {
    if (stream.nfd === undefined) return 0;
    try {
      fdatasyncSync(stream.nfd);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EINVAL' || code === 'EBADF' || code === 'EISDIR') return 0;
      throw new ErrnoError(29); // EIO in Emscripten's numbering
    }
    return 0;
  };
  return true;
}

/**
 * Embedded PostgreSQL (PGlite, WASM) behind the executor interface. One connection per process:
 * PGlite serializes queries and transactions itself, so `for update skip locked` and the
 * single-statement hot paths behave as on PostgreSQL with one session.
 *
 * Durability: with a data directory PGlite writes PostgreSQL's own files (WAL included) through
 * Node's filesystem, and with `durability: 'fsync'` (the default) flushes the WAL before a commit
 * returns (see PgliteDurability; docs/semantics.md says what survives which crash). An in-memory
 * instance (`dataDir` omitted) keeps nothing.
 */
export async function createPgliteExecutor(
  options: { dataDir?: string; durability?: PgliteDurability } = {},
): Promise<Executor> {
  const durable = options.dataDir !== undefined && (options.durability ?? 'fsync') === 'fsync';
  const startParams = durable ? durableStartParams() : [];
  const db =
    options.dataDir === undefined
      ? new PGlite()
      : startParams.length > 0
        ? new PGlite(options.dataDir, { startParams })
        : new PGlite(options.dataDir);
  await db.waitReady;
  // After start-up (the module exists from then on); the streams already open share the patched
  // operations object. Flushes asked for during start-up itself are dropped: the next checkpoint
  // (at the latest, the one at close) flushes those files.
  if (durable && !(startParams.length > 0 && installFsync(db))) {
    // Not the PGlite build this was written against: its flushes are still dropped. Said once on
    // stderr rather than refusing to start, so that a PGlite update cannot stop `weft dev`.
    process.emitWarning(
      `this PGlite build does not expose what Weft needs to flush its data folder (${options.dataDir}) to disk: commits survive a crash of this process but not an OS crash (docs/semantics.md). Pin @electric-sql/pglite to the version in Weft's package.json, or set WEFT_PGLITE_DURABILITY=os to silence this.`,
      { code: 'WEFT_PGLITE_NO_FSYNC' },
    );
  }
  let closed = false;

  const prepared = preparedQueries(db);
  const query = async <R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
    if (prepared) return prepared.query<R>(sql, params);
    const result = await db.query<R>(sql, params as unknown[] | undefined);
    return { rows: result.rows };
  };

  return {
    kind: 'pglite',
    query,
    async exec(sql: string) {
      await db.exec(sql);
    },
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return db.transaction(async (tx) => {
        const q: Queryable = {
          query: async <R>(sql: string, params?: readonly unknown[]) => {
            const result = await tx.query<R>(sql, params as unknown[] | undefined);
            return { rows: result.rows };
          },
          exec: async (sql: string) => {
            await tx.exec(sql);
          },
        };
        return fn(q);
      });
    },
    async listen(channel, onNotify) {
      const unsubscribe = await db.listen(channel, onNotify);
      return async () => {
        if (!closed) await unsubscribe();
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.close();
    },
  };
}
