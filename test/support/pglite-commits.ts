/**
 * Child process for test/store.pglite-durability.test.ts: open a PGlite data folder with the given
 * durability and make N commits (one insert each, autocommit), then close. Run under strace to
 * count the flush calls those commits make.
 *
 *   node --import tsx test/support/pglite-commits.ts <dataDir> <fsync|os> <commits>
 */
import { createPgliteExecutor, type PgliteDurability } from '../../src/store/pglite-executor.js';

const [dataDir, durability, commits] = process.argv.slice(2);
const db = await createPgliteExecutor({
  dataDir: dataDir!,
  durability: durability as PgliteDurability,
});
await db.query('create table if not exists commits (n integer)');
for (let i = 0; i < Number(commits); i++) await db.query('insert into commits values ($1)', [i]);
await db.close();
