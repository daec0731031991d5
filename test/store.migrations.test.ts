import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import {
  loadFunctionSet,
  loadMigrations,
  migrateSchema,
  schemaBehind,
  type MigrationSet,
} from '../src/store/migrator.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';
import { createStores } from '../src/store/stores.js';
import { createPgDatabase } from './support/databases.js';
import { defineWorkflow } from '../src/index.js';
import { compileWorkflow } from '../src/core/graph.js';

describe('migrations', () => {
  it('five migrators racing on a fresh PostgreSQL database apply each migration and each function set once', async () => {
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
        `weft.functions@${loadFunctionSet('control').hash}`,
        `weft_loc_a0.functions@${loadFunctionSet('location').hash}`,
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

const SETS: MigrationSet[] = ['control', 'ops', 'location'];
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('migration files and the SQL function set', () => {
  it('no shipped migration was edited (checksums in test/fixtures/migration-checksums.json)', () => {
    // The manifest lists the migrations of released versions (0.1.0: location 0001-0005, control
    // 0001-0003, ops 0001-0002): databases in the field ran them, and a database records which
    // migrations ran, not their text, so an edit would never reach them. Migrations added since
    // may change until they ship; add them to the manifest at the release.
    const shipped = JSON.parse(
      readFileSync(new URL('./fixtures/migration-checksums.json', import.meta.url), 'utf8'),
    ) as Record<string, string>;
    const files = SETS.flatMap((set) =>
      loadMigrations(set).map((m) => [
        `${set}/${String(m.number).padStart(4, '0')}_${m.name}.sql`,
        m.checksum,
      ]),
    );
    const current = Object.fromEntries(files) as Record<string, string>;
    for (const [file, checksum] of Object.entries(shipped)) {
      expect(current[file], `${file} shipped in a release but is gone`).toBeDefined();
      expect(
        current[file],
        `${file} was edited after it shipped (sha256 ${checksum} in the manifest): put the change in a new migration (tables) or in src/store/sql (functions)`,
      ).toBe(checksum);
    }
  });

  it('migrations after the function set defines no function (functions live in src/store/sql)', () => {
    const firstWithout: Record<MigrationSet, number> = { control: 4, ops: 3, location: 6 };
    for (const set of SETS) {
      for (const m of loadMigrations(set).filter((f) => f.number >= firstWithout[set])) {
        expect(m.sql, `migration ${set}/${m.number} ${m.name}`).not.toMatch(
          /create\s+(or\s+replace\s+)?function/i,
        );
      }
    }
  });

  it('no location function sends weft_ready or weft_cancel inside its transaction (the store signals after commit)', () => {
    for (const file of loadFunctionSet('location').files) {
      // notify_run_events (weft_events) only fires for runs a server streams (0002's comment)
      expect(file.sql, `sql/location/${file.name}`).not.toMatch(
        /pg_notify\(\s*'weft_(ready|cancel|run_finished)'/,
      );
    }
  });

  it('one file per function, named for it', () => {
    for (const set of SETS) {
      for (const file of loadFunctionSet(set).files) {
        const names = [
          ...file.sql.matchAll(/create or replace function \{\{schema\}\}\.(\w+)\(/g),
        ].map((m) => m[1]);
        expect(names.length, `sql/${set}/${file.name}`).toBeGreaterThan(0);
        // wake.sql holds the three small wake-up helpers, which only make sense together
        if (file.name !== 'wake.sql')
          expect(names, `sql/${set}/${file.name}`).toEqual([file.name.slice(0, -4)]);
      }
    }
    expect(readdirSync(new URL('../src/store/sql/location/', import.meta.url))).toContain(
      'claim_by_ids.sql',
    );
  });

  it('records each migration checksum, fills those of databases migrated before checksums, and re-applies functions whose hash differs', async () => {
    const executor = await createPgliteExecutor();
    try {
      await migrateSchema(executor, 'location', 'weft_loc_a0', { tag: 'a0' });
      const rows = await executor.query<{ number: number; checksum: string }>(
        `select number, checksum from weft_loc_a0.weft_migrations order by number`,
      );
      expect(rows.rows.map((r) => r.checksum)).toEqual(
        loadMigrations('location').map((m) => sha256(m.sql)),
      );
      // a database migrated by 0.1 has no checksums: the next migrate records them
      await executor.query(`update weft_loc_a0.weft_migrations set checksum = null`);
      await migrateSchema(executor, 'location', 'weft_loc_a0', { tag: 'a0' });
      const filled = await executor.query<{ n: number }>(
        `select count(*)::int as n from weft_loc_a0.weft_migrations where checksum is null`,
      );
      expect(filled.rows[0]!.n).toBe(0);

      const expected = loadFunctionSet('location').hash;
      expect(await schemaBehind(executor, 'location', 'weft_loc_a0')).toBeNull();
      // older functions (another build migrated it): not current, both hashes named, migrate fixes it
      await executor.query(`update weft_loc_a0.weft_functions set hash = 'feedfacecafebeef'`);
      await executor.query(
        `create or replace function weft_loc_a0.run_ended(p_status text) returns boolean language sql immutable as $$ select false $$`,
      );
      const behind = await schemaBehind(executor, 'location', 'weft_loc_a0');
      expect(behind).toContain('feedfacecafebeef');
      expect(behind).toContain(expected);
      expect(behind).toContain('weft migrate');
      await expect(
        migrateSchema(executor, 'location', 'weft_loc_a0', { tag: 'a0' }),
      ).resolves.toEqual({
        schema: 'weft_loc_a0',
        applied: [`functions@${expected}`],
      });
      const ended = await executor.query<{ e: boolean }>(
        `select weft_loc_a0.run_ended('failed') as e`,
      );
      expect(ended.rows[0]!.e).toBe(true);
      expect(await schemaBehind(executor, 'location', 'weft_loc_a0')).toBeNull();
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
