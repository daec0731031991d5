/**
 * Child process of test/store.pg-session-loss.test.ts: runs transactions and queries through a
 * PostgreSQL executor on 6 concurrent loops while a second connection terminates the executor's
 * sessions every few milliseconds (new ones included, as they connect). Prints one JSON line
 * `{ ok, failed, after }` and exits 0; an unhandled 'error' event of a pg client ends it with
 * code 1 instead, which is the bug the test names.
 *
 *   node --import tsx test/support/pg-cut-child.ts <database url> <milliseconds>
 */
import pg from 'pg';
import { createPgExecutor } from '../../src/store/pg-executor.js';

const [url, msText] = process.argv.slice(2);
if (!url || !msText) throw new Error('usage: pg-cut-child.ts <database url> <milliseconds>');
const appName = `weft-cut-${process.pid}`;
const executor = createPgExecutor({ connectionString: url, max: 4, applicationName: appName });
const admin = new pg.Client({ connectionString: url });
await admin.connect();
const until = Date.now() + Number(msText);
let ok = 0;
let failed = 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const load = async (): Promise<void> => {
  while (Date.now() < until) {
    try {
      if (ok % 2 === 0)
        await executor.transaction(async (tx) => {
          await tx.query('select 1');
          await sleep(2);
          await tx.query('select pg_sleep(0.001)');
        });
      else await executor.query('select pg_sleep(0.002), $1::int as x', [1]);
      ok++;
    } catch {
      failed++; // a statement cut mid-flight fails; that is expected, a crash is not
    }
  }
};
const cutter = async (): Promise<void> => {
  while (Date.now() < until) {
    await admin.query(
      `select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1`,
      [appName],
    );
    await sleep(Math.random() * 10);
  }
};
await Promise.all([load(), load(), load(), load(), load(), load(), cutter()]);
// once the cuts stop, the executor works again
const after = await executor.transaction(
  async (tx) => (await tx.query<{ n: number }>('select 42 as n')).rows[0]!.n,
);
process.stdout.write(`${JSON.stringify({ ok, failed, after })}\n`);
await executor.close();
await admin.end();
