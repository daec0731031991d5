/**
 * Every bad split configuration fails at boot, through the real CLI, with a message naming the
 * setting and the fix: the same database twice (spelt differently: the sentinel compares
 * system_identifier and current_database(), not URLs) in `weft migrate`, `weft worker`,
 * `weft start` and `weft server`; a probe that cannot run (a role that may not execute
 * pg_control_system()) fails closed; an unreachable run-ops database; a missing DATABASE_URL; an
 * unsupported URL; one PGlite folder twice; and a run-ops URL whose LISTEN connection does not hear
 * NOTIFYs (a proxy that drops them, as a transaction-mode pooler does) — live events would never
 * arrive, so boot refuses. A correct split boots.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, type CliProcess } from './support/cli-process.js';
import { adminUrl, createPgDatabase } from './support/databases.js';

const WORKFLOW = `import { defineWorkflow } from 'weft';
export default defineWorkflow<{ n: number }>('noop').step('a', async ({ n }) => n);
`;

/**
 * A TCP proxy to PostgreSQL that forwards everything except NotificationResponse messages ('A')
 * from the server: LISTEN "works", nothing is ever heard.
 */
async function notificationDroppingProxy(
  target: URL,
): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    let buffer = Buffer.alloc(0);
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => {
      buffer = Buffer.concat([buffer, d]);
      // typed messages: 1 byte type + int32 length (which counts itself)
      while (buffer.length >= 5) {
        const length = buffer.readInt32BE(1);
        if (buffer.length < 1 + length) break;
        const message = buffer.subarray(0, 1 + length);
        buffer = buffer.subarray(1 + length);
        if (String.fromCharCode(message[0]!) !== 'A') client.write(message);
      }
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target.toString());
  url.port = String((server.address() as { port: number }).port);
  return {
    url: url.toString(),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('split mode: bad configurations fail at boot, through the CLI', () => {
  let control: { url: string; drop: () => Promise<void> };
  let ops: { url: string; drop: () => Promise<void> };
  let locked: { url: string; drop: () => Promise<void> };
  let dir: string;
  const role = `weft_split_probe_${randomBytes(4).toString('hex')}`;
  const running: CliProcess[] = [];

  /** The control database's URL spelt with `localhost` instead of 127.0.0.1: same database. */
  const sameDatabaseOtherName = () => {
    const u = new URL(control.url);
    u.hostname = 'localhost';
    return u.toString();
  };
  const cli = (args: string[], env: Record<string, string>) =>
    runCli(args, { cwd: dir, env: { WEFT_CONNECT_TIMEOUT: '0', ...env }, timeoutMs: 60_000 });

  beforeAll(async () => {
    control = await createPgDatabase('split_bt_ctl');
    ops = await createPgDatabase('split_bt_ops');
    locked = await createPgDatabase('split_bt_lck');
    dir = mkdtempSync(join(tmpdir(), 'weft-split-boot-'));
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'split-boot', type: 'module' }),
    );
    writeFileSync(join(dir, 'noop.ts'), WORKFLOW);
    // The control plane alone is migrated, so that a refusal is the sentinel's, not "not migrated".
    const migrated = await cli(['migrate'], { DATABASE_URL: control.url });
    expect(migrated.code, migrated.stderr).toBe(0);
    // A role that may connect to `locked` but not execute pg_control_system() there.
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    await admin.query(`create role ${role} login`);
    await admin.end();
    const inLocked = new pg.Client({ connectionString: locked.url });
    await inLocked.connect();
    await inLocked.query(`revoke execute on function pg_control_system() from public`);
    await inLocked.end();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(running.map((p) => p.stop(5_000)));
    await control?.drop();
    await ops?.drop();
    await locked?.drop();
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    await admin.query(`drop role if exists ${role}`).catch(() => {});
    await admin.end();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const sameDb = () => ({
    DATABASE_URL: control.url,
    RUN_OPS_DATABASE_URL: sameDatabaseOtherName(),
  });
  const expectSameDatabase = (r: { code: number | null; stderr: string }, name: string) => {
    expect(r.code, `${name}: ${r.stderr}`).not.toBe(0);
    expect(r.stderr).toContain(
      'RUN_OPS_DATABASE_URL and DATABASE_URL reach the same physical database',
    );
    expect(r.stderr).toContain(`database "${new URL(control.url).pathname.slice(1)}"`);
    expect(r.stderr).toMatch(/system_identifier \d+/);
    expect(r.stderr).toContain('point RUN_OPS_DATABASE_URL at it');
    expect(r.stderr).toContain('or unset RUN_OPS_DATABASE_URL');
  };

  it('the same database under two names: weft migrate, worker, start, server, keys and replicate refuse', async () => {
    expectSameDatabase(await cli(['migrate'], sameDb()), 'migrate');
    expectSameDatabase(
      await cli(['worker', '--workflows', './noop.ts', '--environment', 'prod'], sameDb()),
      'worker',
    );
    expectSameDatabase(
      await cli(
        ['start', '--workflows', './noop.ts', '--environment', 'prod', '--port', '0'],
        sameDb(),
      ),
      'start',
    );
    expectSameDatabase(await cli(['server', '--port', '0'], sameDb()), 'server');
    expectSameDatabase(await cli(['keys', 'list'], sameDb()), 'keys list');
    expectSameDatabase(await cli(['replicate'], sameDb()), 'replicate');
  }, 180_000);

  it('the probe itself fails (no permission on pg_control_system()): fails closed, naming the grant', async () => {
    const url = new URL(locked.url);
    url.username = role;
    const r = await cli(['migrate'], {
      DATABASE_URL: control.url,
      RUN_OPS_DATABASE_URL: url.toString(),
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'cannot verify that RUN_OPS_DATABASE_URL is a different database from DATABASE_URL',
    );
    expect(r.stderr).toContain('permission denied');
    expect(r.stderr).toContain('fail closed');
    expect(r.stderr).toContain('GRANT pg_monitor TO <role>');
    // nothing was written to the run-ops database
    const c = new pg.Client({ connectionString: locked.url });
    await c.connect();
    const schemas = await c.query(`select 1 from pg_namespace where nspname like 'weft%'`);
    await c.end();
    expect(schemas.rows).toEqual([]);
  }, 60_000);

  it('an unreachable run-ops database: migrate, worker and server refuse, naming RUN_OPS_DATABASE_URL', async () => {
    const env = {
      DATABASE_URL: control.url,
      RUN_OPS_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere',
    };
    const migrate = await cli(['migrate'], env);
    expect(migrate.code).not.toBe(0);
    expect(migrate.stderr).toContain('RUN_OPS_DATABASE_URL');
    expect(migrate.stderr).toMatch(/ECONNREFUSED/);
    expect(migrate.stderr).toContain('Fix: check that RUN_OPS_DATABASE_URL');
    for (const args of [
      ['worker', '--workflows', './noop.ts', '--environment', 'prod'],
      ['server', '--port', '0'],
    ]) {
      const r = await cli(args, env);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toContain('(RUN_OPS_DATABASE_URL)');
      expect(r.stderr).toContain('WEFT_CONNECT_TIMEOUT');
    }
  }, 120_000);

  it('missing DATABASE_URL, an unsupported URL, one PGlite folder twice', async () => {
    for (const command of [['migrate'], ['server'], ['worker', '--workflows', './noop.ts']]) {
      const r = await cli(command, { RUN_OPS_DATABASE_URL: ops.url });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('RUN_OPS_DATABASE_URL is set');
      expect(r.stderr).toContain('but DATABASE_URL is not');
      expect(r.stderr).toContain('Set DATABASE_URL');
    }
    const bad = await cli(['migrate'], {
      DATABASE_URL: control.url,
      RUN_OPS_DATABASE_URL: 'mysql://x@127.0.0.1/ops',
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('RUN_OPS_DATABASE_URL: database URL');
    expect(bad.stderr).toContain('is not supported');
    const folder = join(dir, 'pg-data');
    const twice = await cli(['migrate'], {
      DATABASE_URL: `pglite:${folder}`,
      RUN_OPS_DATABASE_URL: `pglite:${folder}/`,
    });
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toContain(
      'DATABASE_URL and RUN_OPS_DATABASE_URL name the same PGlite folder',
    );
  }, 120_000);

  it('live events: a run-ops URL whose LISTEN connection hears nothing is refused at boot', async () => {
    const migrated = await cli(['migrate'], {
      DATABASE_URL: control.url,
      RUN_OPS_DATABASE_URL: ops.url,
    });
    expect(migrated.code, migrated.stderr).toBe(0);
    const proxy = await notificationDroppingProxy(new URL(ops.url));
    try {
      const r = await cli(['server', '--port', '0'], {
        DATABASE_URL: control.url,
        RUN_OPS_DATABASE_URL: proxy.url,
      });
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toContain('live events would never arrive');
      expect(r.stderr).toContain('the LISTEN connection of RUN_OPS_DATABASE_URL did not hear');
      expect(r.stderr).toContain('transaction-mode pooler');
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('a correct split boots: weft server serves, weft worker starts', async () => {
    const env = { DATABASE_URL: control.url, RUN_OPS_DATABASE_URL: ops.url };
    const server = startCli(['server', '--port', '0'], { cwd: dir, env });
    const worker = startCli(['worker', '--workflows', './noop.ts', '--environment', 'prod'], {
      cwd: dir,
      env,
    });
    running.push(server, worker);
    await server.waitFor('stdout', /server listening/, 60_000);
    await worker.waitFor('stdout', /worker started/, 60_000);
  }, 90_000);
});
