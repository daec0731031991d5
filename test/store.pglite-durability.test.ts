/**
 * A PGlite data folder is opened durable by default: PostgreSQL runs with fsync on and flushes its
 * WAL with fsync() (the one PGlite routes to the file system, which Weft makes real); `os` keeps
 * PGlite's own settings (fsync off). The flush counts are in docs/semantics.md (strace); this
 * guards the settings they depend on, and that no warning says the flush could not be installed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
});
