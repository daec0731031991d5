/**
 * A PGlite data folder is opened durable by default: PostgreSQL runs with fsync on and flushes its
 * WAL with fsync() (the one PGlite routes to the file system, which Weft makes real); `os` keeps
 * PGlite's own settings (fsync off). Guarded here: the settings, that no warning says the flush
 * could not be installed, and — where strace is installed (`apt-get install strace`) — the flush
 * system calls themselves: a child process makes 40 commits under `strace -f -c -e
 * trace=fsync,fdatasync`, compared with the same process making none, so opening, migrating and
 * closing cancel out. Durable: at least one flush per commit. `os`: none per commit.
 * An OS crash itself (power loss, kernel panic) is not simulated: that needs a VM or a
 * fault-injecting block device; a flush on every commit is what lets a committed write survive it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';

describe('PGlite durability settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-pglite-durability-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const settings = async (durability: 'fsync' | 'os') => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => void warnings.push(w.code ?? w.message);
    process.on('warning', onWarning);
    const db = await createPgliteExecutor({ dataDir: join(dir, durability), durability });
    try {
      const show = async (name: string) =>
        (await db.query<Record<string, string>>(`show ${name}`)).rows[0]![name];
      await db.query('create table t (v text)');
      await db.query(`insert into t values ('x')`);
      await new Promise((r) => setImmediate(r));
      return {
        fsync: await show('fsync'),
        walSyncMethod: await show('wal_sync_method'),
        warnings,
      };
    } finally {
      process.off('warning', onWarning);
      await db.close();
    }
  };

  it('fsync (the default): fsync on, WAL flushed with fsync(), no warning', async () => {
    expect(await settings('fsync')).toEqual({
      fsync: 'on',
      walSyncMethod: 'fsync',
      warnings: [],
    });
  });

  it('os: PGlite as shipped (fsync off)', async () => {
    expect((await settings('os')).fsync).toBe('off');
  });

  const hasStrace = (() => {
    try {
      execFileSync('strace', ['-V'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  const child = fileURLToPath(new URL('./support/pglite-commits.ts', import.meta.url));

  /** fsync + fdatasync calls of a child that opens a fresh folder and makes `commits` commits. */
  const flushes = (durability: 'fsync' | 'os', commits: number): number => {
    const folder = join(dir, `strace-${durability}-${commits}`);
    const out = join(dir, `strace-${durability}-${commits}.txt`);
    const r = spawnSync(
      'strace',
      ['-f', '-c', '-e', 'trace=fsync,fdatasync', '-o', out].concat([
        process.execPath,
        '--import',
        'tsx',
        child,
        folder,
        durability,
        String(commits),
      ]),
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    let calls = 0;
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const cols = line.trim().split(/\s+/);
      const name = cols[cols.length - 1];
      if (name === 'fsync' || name === 'fdatasync') calls += Number(cols[3]);
    }
    return calls;
  };

  it.runIf(hasStrace)(
    'fsync: every commit reaches the disk (strace: at least one fsync/fdatasync per commit); os: none',
    () => {
      const durable = flushes('fsync', 40) - flushes('fsync', 0);
      const os = flushes('os', 40) - flushes('os', 0);
      console.log(`[pglite-flushes] 40 commits: fsync ${durable} flushes, os ${os}`);
      expect(durable).toBeGreaterThanOrEqual(40);
      expect(os).toBeLessThan(5);
    },
    300_000,
  );
});
