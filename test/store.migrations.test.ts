import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMigrations, migrateSchema } from '../src/store/migrator.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';
import { createStores } from '../src/store/stores.js';
import { createPgDatabase } from './support/databases.js';
import { defineWorkflow } from '../src/index.js';
import { compileWorkflow } from '../src/core/graph.js';

describe('migrations', () => {
  it('five migrators racing on a fresh PostgreSQL database apply each migration once', async () => {
    const db = await createPgDatabase('mig');
    const executors = Array.from({ length: 5 }, () =>
      createPgExecutor({ connectionString: db.url, max: 2 }),
    );
    try {
      const results = await Promise.all(
        executors.map((e) => createStores({ control: e }).migrate()),
      );
      const applied = results.flat().sort();
      const expected = [
        ...loadMigrations('control').map(
          (m) => `weft.${String(m.number).padStart(4, '0')}_${m.name}`,
        ),
        ...loadMigrations('location').map(
          (m) => `weft_loc_a0.${String(m.number).padStart(4, '0')}_${m.name}`,
        ),
        ...loadMigrations('ops').map(
          (m) => `weft_ops.${String(m.number).padStart(4, '0')}_${m.name}`,
        ),
      ].sort();
      expect(applied).toEqual(expected);
      const rows = await executors[0]!.query<{ n: number }>(
        `select count(*)::int as n from weft.weft_migrations`,
      );
      expect(rows.rows[0]!.n).toBe(loadMigrations('control').length);
      expect(await createStores({ control: executors[0]! }).isReady()).toBe(true);
    } finally {
      await Promise.all(executors.map((e) => e.close()));
      await db.drop();
    }
  });

  it('refuses a database that is ahead by a breaking migration, and accepts one ahead by an additive one', async () => {
    const executor = await createPgliteExecutor();
    try {
      await migrateSchema(executor, 'control', 'weft');
      await executor.query(
        `insert into weft.weft_migrations (number, name, migration_set, breaking) values (900, 'add_column', 'control', false)`,
      );
      await expect(migrateSchema(executor, 'control', 'weft')).resolves.toMatchObject({
        applied: [],
      });
      await executor.query(
        `insert into weft.weft_migrations (number, name, migration_set, breaking) values (901, 'rename_everything', 'control', true)`,
      );
      await expect(migrateSchema(executor, 'control', 'weft')).rejects.toMatchObject({
        code: 'database_ahead',
        message: expect.stringContaining('breaking migration 901 (rename_everything)'),
      });
    } finally {
      await executor.close();
    }
  });
});

describe('PGlite durability', () => {
  it('keeps committed runs across a close and reopen of the data directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-pglite-'));
    try {
      const first = createStores({ control: await createPgliteExecutor({ dataDir: dir }) });
      await first.migrate();
      const { environmentId } = await first.control.createTenant({
        organization: 'o',
        project: 'p',
        environment: 'dev',
      });
      const compiled = compileWorkflow(defineWorkflow('keep').step('s', () => 1));
      const { versionId } = await first.control.registerWorkflow(environmentId, compiled);
      const { run } = await first.runs.createRun({
        environmentId,
        workflowId: 'keep',
        versionId,
        graph: compiled.graph,
        inputText: '{"kept":true}',
        inputBytes: 13,
        saveDataclips: true,
        trigger: { kind: 'api' },
      });
      await first.close();

      const second = createStores({ control: await createPgliteExecutor({ dataDir: dir }) });
      await second.migrate();
      const again = await second.runs.getRun(environmentId, run.id);
      expect(again?.status).toBe('queued');
      expect((await second.runs.getDataclip(environmentId, run.inputDataclipId!))?.body).toEqual({
        kept: true,
      });
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
