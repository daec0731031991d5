/**
 * Numbered, forward-only `.sql` migrations. Three sets, each applied per schema:
 * - `control`: the control plane (schema `weft` by default);
 * - `ops`: per run-ops database (idempotency keys; schema `weft_ops`);
 * - `location`: the run tables of one location (schema `weft_loc_<tag>`), a template.
 *
 * Each schema records what was applied in its own `weft_migrations` table. A migration is applied
 * in one transaction that first inserts its own row: a concurrent migrator blocks on that key,
 * then collides with a unique violation and backs off (the other one applied it). A process
 * refuses to run against a schema that has a *breaking* migration it does not know (one whose
 * file starts with `-- breaking`): older code must not write to a newer incompatible schema.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { WeftError } from '../core/errors.js';
import { sqlErrorCode, UNIQUE_VIOLATION, type Executor } from './executor.js';

export type MigrationSet = 'control' | 'ops' | 'location';

interface MigrationFile {
  number: number;
  name: string;
  breaking: boolean;
  sql: string;
}

const cache = new Map<MigrationSet, MigrationFile[]>();

export function loadMigrations(set: MigrationSet): MigrationFile[] {
  const cached = cache.get(set);
  if (cached) return cached;
  const dir = new URL(`./migrations/${set}/`, import.meta.url);
  const files = readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f): MigrationFile => {
      const sql = readFileSync(new URL(f, dir), 'utf8');
      return {
        number: Number(f.slice(0, 4)),
        name: f.slice(5, -4),
        breaking: /^--\s*breaking/i.test(sql),
        sql,
      };
    });
  files.forEach((f, i) => {
    if (f.number !== i + 1)
      throw new Error(
        `migrations/${set}: expected migration number ${i + 1}, found ${f.number} (${f.name}); numbers must be consecutive`,
      );
  });
  cache.set(set, files);
  return files;
}

export function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new WeftError(
      'invalid_config',
      `schema name "${name}" is invalid: use lowercase letters, digits and "_", starting with a letter.`,
    );
  }
  return name;
}

function render(sql: string, vars: Record<string, string>): string {
  return sql.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const value = vars[key];
    if (value === undefined) throw new Error(`migration uses {{${key}}} but no value was given`);
    return value;
  });
}

export interface MigrateResult {
  schema: string;
  applied: string[];
}

/** Apply the pending migrations of one set to one schema. Safe to run from many processes at once. */
export async function migrateSchema(
  db: Executor,
  set: MigrationSet,
  schema: string,
  vars: Record<string, string> = {},
): Promise<MigrateResult> {
  const s = quoteIdent(schema);
  const files = loadMigrations(set);
  await db.transaction(async (tx) => {
    // Serializes only the bootstrap (schema + bookkeeping table), not the migrations themselves.
    await tx.query(`select pg_advisory_xact_lock(hashtext($1))`, [`weft-migrate:${s}`]);
    await tx.exec(`create schema if not exists ${s};
      create table if not exists ${s}.weft_migrations (
        number integer primary key,
        name text not null,
        migration_set text not null,
        breaking boolean not null default false,
        applied_at timestamptz not null default now())`);
  });
  const appliedRows = await db.query<{ number: number; name: string; breaking: boolean }>(
    `select number, name, breaking from ${s}.weft_migrations order by number`,
  );
  const known = files.length;
  const unknownBreaking = appliedRows.rows.filter((r) => r.number > known && r.breaking);
  if (unknownBreaking.length > 0) {
    const first = unknownBreaking[0]!;
    throw new WeftError(
      'database_ahead',
      `Schema "${s}" has breaking migration ${first.number} (${first.name}) that this version of Weft does not know (it knows ${known}). Upgrade Weft before running it against this database.`,
      { details: { schema: s, migration: first.number, known } },
    );
  }
  const done = new Set(appliedRows.rows.map((r) => r.number));
  const applied: string[] = [];
  for (const file of files) {
    if (done.has(file.number)) continue;
    try {
      await db.transaction(async (tx) => {
        await tx.query(
          `insert into ${s}.weft_migrations (number, name, migration_set, breaking) values ($1, $2, $3, $4)`,
          [file.number, file.name, set, file.breaking],
        );
        await tx.exec(render(file.sql, { ...vars, schema: s }));
      });
      applied.push(`${String(file.number).padStart(4, '0')}_${file.name}`);
    } catch (error) {
      if (sqlErrorCode(error) === UNIQUE_VIOLATION) continue; // another migrator applied it
      throw error;
    }
  }
  return { schema: s, applied };
}

/** Whether every known migration of the set is applied (readiness). */
export async function isSchemaCurrent(
  db: Executor,
  set: MigrationSet,
  schema: string,
): Promise<boolean> {
  const s = quoteIdent(schema);
  try {
    const rows = await db.query<{ n: number }>(
      `select coalesce(max(number), 0)::int as n from ${s}.weft_migrations`,
    );
    return (rows.rows[0]?.n ?? 0) >= loadMigrations(set).length;
  } catch {
    return false;
  }
}
