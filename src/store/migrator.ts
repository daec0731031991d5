/**
 * Numbered, forward-only `.sql` migrations for tables, and one SQL file per function. Three sets,
 * each applied per schema:
 * - `control`: the control plane (schema `weft` by default);
 * - `ops`: per run-ops database (idempotency keys; schema `weft_ops`);
 * - `location`: the run tables of one location (schema `weft_loc_<tag>`), a template.
 *
 * Tables (DDL) live in `migrations/<set>/NNNN_name.sql`. Each schema records what was applied in
 * its own `weft_migrations` table, with the sha256 of the file it applied (recorded from 0.2 on;
 * test/store.migrations.test.ts refuses an edited shipped migration). A migration is applied in
 * one transaction that first inserts its own row: a concurrent migrator blocks on that key, then
 * collides with a unique violation and backs off (the other one applied it). A process refuses to
 * run against a schema that has a *breaking* migration it does not know (one whose file starts
 * with `-- breaking`): older code must not write to a newer incompatible schema.
 *
 * Functions live in `sql/<set>/<name>.sql` (graphile-worker style: SQL as code, one operation per
 * file, each `create or replace`, or `drop … ; create …` where a signature changes). After the
 * DDL migrations, the whole set is applied in ONE transaction and its content hash recorded in
 * `weft_functions` (migration location 0007, control 0004, ops 0003). So a fix to a function is an
 * edit of its file, not a new migration, and a database migrated earlier gets it at the next
 * `weft migrate` (and `weft dev` / tests, which migrate at start). A process that does not migrate
 * (`weft worker`, `weft server`) checks the recorded hash at start (readiness) and refuses to run
 * against functions it does not know, naming both hashes. Migrations 0001–0005 of `location`
 * still create the functions of their day (a fresh database runs them, then the set replaces
 * them); a migration added from now on must not define functions.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { WeftError } from '../core/errors.js';
import { ID_ALPHABET } from '../core/ids.js';
import { ENDED_RUN_STATUSES } from '../core/statuses.js';
import { sqlErrorCode, UNIQUE_VIOLATION, type Executor } from './executor.js';

export type MigrationSet = 'control' | 'ops' | 'location';

interface MigrationFile {
  number: number;
  name: string;
  breaking: boolean;
  sql: string;
  /** sha256 (hex) of the file's text, recorded in weft_migrations.checksum. */
  checksum: string;
}

/** The function set of a migration set: every file of `sql/<set>/`, and its content hash. */
export interface FunctionSet {
  set: MigrationSet;
  /** First 16 hex characters of the sha256 over the sorted file names and their text. */
  hash: string;
  files: Array<{ name: string; sql: string }>;
}

const cache = new Map<MigrationSet, MigrationFile[]>();
const functionCache = new Map<MigrationSet, FunctionSet>();

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

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
        checksum: sha256(sql),
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

/**
 * Build-wide constants the function files take from TypeScript, so that each is written once:
 * `{{id_alphabet}}` (src/core/ids.ts) and `{{ended_run_statuses}}` (src/core/statuses.ts, as a
 * SQL list). They are substituted before hashing: changing one changes the hash.
 */
const BUILD_CONSTANTS: Record<string, string> = {
  id_alphabet: ID_ALPHABET,
  ended_run_statuses: ENDED_RUN_STATUSES.map((s) => `'${s}'`).join(', '),
};

export function loadFunctionSet(set: MigrationSet): FunctionSet {
  const cached = functionCache.get(set);
  if (cached) return cached;
  const dir = new URL(`./sql/${set}/`, import.meta.url);
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((f) => /^[a-z0-9_]+\.sql$/.test(f));
  } catch {
    // a set without functions
  }
  names.sort();
  const hash = createHash('sha256');
  const files = names.map((name) => {
    const sql = renderSome(
      placeFragments(readFileSync(new URL(name, dir), 'utf8'), dir, name),
      BUILD_CONSTANTS,
    );
    hash.update(`${name}\0${sql}\0`);
    return { name, sql };
  });
  const result: FunctionSet = { set, hash: hash.digest('hex').slice(0, 16), files };
  functionCache.set(set, result);
  return result;
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

/**
 * Place `{{fragment:<name>}}` with `fragments/<name>.sql` of the same set: SQL written once and
 * run inline in more than one function, without a call (the claim rule: claim_by_ids and the
 * chain's take in complete_step). Placed before hashing, so editing a fragment changes the hash.
 */
function placeFragments(sql: string, dir: URL, file: string): string {
  return sql.replace(/\{\{fragment:(\w+)\}\}/g, (_, name: string) => {
    try {
      return readFileSync(new URL(`fragments/${name}.sql`, dir), 'utf8').trimEnd();
    } catch {
      throw new Error(
        `${file} places fragment "${name}", but fragments/${name}.sql does not exist`,
      );
    }
  });
}

/**
 * A fragment of a function set as its functions place it (build constants substituted,
 * `{{schema}}` left): for a statement the store sends itself with the same SQL inside
 * (store/runs/chain-commit.ts places the claim rule).
 */
export function readFragment(set: MigrationSet, name: string): string {
  const dir = new URL(`./sql/${set}/`, import.meta.url);
  return renderSome(placeFragments(`{{fragment:${name}}}`, dir, `(${name})`), BUILD_CONSTANTS);
}

/** Substitute the given `{{key}}`s, leave the others (rendered per schema later). */
function renderSome(sql: string, vars: Record<string, string>): string {
  return sql.replace(/\{\{(\w+)\}\}/g, (all, key: string) => vars[key] ?? all);
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
  /** Migrations applied, and `functions@<hash>` when the function set was (re)applied. */
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
        applied_at timestamptz not null default now());
      alter table ${s}.weft_migrations add column if not exists checksum text`);
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
          `insert into ${s}.weft_migrations (number, name, migration_set, breaking, checksum) values ($1, $2, $3, $4, $5)`,
          [file.number, file.name, set, file.breaking, file.checksum],
        );
        await tx.exec(render(file.sql, { ...vars, schema: s }));
      });
      applied.push(`${String(file.number).padStart(4, '0')}_${file.name}`);
    } catch (error) {
      if (sqlErrorCode(error) === UNIQUE_VIOLATION) continue; // another migrator applied it
      throw error;
    }
  }
  // Migrations applied before checksums were recorded (0.1): record the shipped file's now.
  await db.query(
    `update ${s}.weft_migrations m set checksum = f.checksum
       from unnest($1::integer[], $2::text[]) as f(number, checksum)
      where m.number = f.number and m.checksum is null`,
    [files.map((f) => f.number), files.map((f) => f.checksum)],
  );
  const fns = loadFunctionSet(set);
  if (fns.files.length > 0 && (await applyFunctionSet(db, fns, s, vars)))
    applied.push(`functions@${fns.hash}`);
  return { schema: s, applied };
}

/**
 * Apply a function set in one transaction, unless the schema already records its hash. Under the
 * migrate lock, so two migrators apply it once; `check_function_bodies` is off inside it so that
 * files may refer to one another in any order (PL/pgSQL resolves calls at run time anyway).
 * Failure semantics: a file that fails rolls the whole set back; the old functions and hash stay.
 */
async function applyFunctionSet(
  db: Executor,
  fns: FunctionSet,
  s: string,
  vars: Record<string, string>,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    await tx.query(`select pg_advisory_xact_lock(hashtext($1))`, [`weft-migrate:${s}`]);
    const current = await tx.query<{ hash: string }>(`select hash from ${s}.weft_functions`);
    if (current.rows[0]?.hash === fns.hash) return false;
    await tx.exec(`set local check_function_bodies = off`);
    for (const file of fns.files) await tx.exec(render(file.sql, { ...vars, schema: s }));
    await tx.query(
      `insert into ${s}.weft_functions (id, hash, files) values (true, $1, $2)
       on conflict (id) do update set hash = excluded.hash, files = excluded.files, applied_at = now()`,
      [fns.hash, fns.files.length],
    );
    return true;
  });
}

/** The function-set hash a schema records (null: none yet), and the one this build ships. */
export async function functionSetStatus(
  db: Executor,
  set: MigrationSet,
  schema: string,
): Promise<{ expected: string; found: string | null }> {
  const s = quoteIdent(schema);
  const expected = loadFunctionSet(set).hash;
  try {
    const rows = await db.query<{ hash: string }>(`select hash from ${s}.weft_functions`);
    return { expected, found: rows.rows[0]?.hash ?? null };
  } catch {
    return { expected, found: null };
  }
}

/**
 * Why a schema is not current for this build, or null when it is: migrations missing, or SQL
 * functions other than the ones this build ships (the message names both hashes and the fix).
 */
export async function schemaBehind(
  db: Executor,
  set: MigrationSet,
  schema: string,
): Promise<string | null> {
  const s = quoteIdent(schema);
  let n = 0;
  try {
    const rows = await db.query<{ n: number }>(
      `select coalesce(max(number), 0)::int as n from ${s}.weft_migrations`,
    );
    n = rows.rows[0]?.n ?? 0;
  } catch (error) {
    // No schema or no migrations table yet: nothing applied. Anything else (a connection the
    // database refused, a timeout) says nothing about migrations: the caller reports it.
    const code = sqlErrorCode(error);
    if (code !== '42P01' && code !== '3F000') throw error;
    n = 0;
  }
  const known = loadMigrations(set).length;
  if (n < known)
    return `schema ${s} has ${n} of this build's ${known} ${set} migrations; run \`weft migrate\``;
  const fns = loadFunctionSet(set);
  if (fns.files.length === 0) return null;
  const { expected, found } = await functionSetStatus(db, set, s);
  if (found === expected) return null;
  return `schema ${s} has SQL functions ${found ?? '(none recorded)'} but this build of Weft runs functions ${expected}; run \`weft migrate\` with this build (a newer build migrated it: run that one)`;
}

/** Whether every known migration of the set is applied and its functions are this build's (readiness). */
export async function isSchemaCurrent(
  db: Executor,
  set: MigrationSet,
  schema: string,
): Promise<boolean> {
  return (await schemaBehind(db, set, schema)) === null;
}
