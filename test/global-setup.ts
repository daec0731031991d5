// Fails fast, with the fix, when the PostgreSQL half of the suite has no server to talk to.
import pg from 'pg';
import { adminUrl } from './support/databases.js';

export default async function setup(): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl() });
  try {
    await client.connect();
    await client.query('select 1');
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${adminUrl()} (${(error as Error).message}). Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set WEFT_TEST_PG_URL.`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}
