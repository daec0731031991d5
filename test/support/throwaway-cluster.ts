/**
 * A PostgreSQL cluster of a test's own (initdb into a temp folder, a free port, trust auth on
 * 127.0.0.1), so restart and outage tests can stop and start PostgreSQL without touching the
 * shared server on 5432. fsync and full page writes are off: the tests stop the server, even with
 * an immediate shutdown, but never crash the machine, so what reached the OS survives.
 * `synchronous_commit` stays on: with it off, an immediate shutdown would lose commits already
 * acknowledged (Weft's "acknowledged means durable" assumes it on).
 *
 * As root (CI containers), the server binaries run as the `postgres` user via runuser, since
 * PostgreSQL refuses to run as root.
 */
import { execFile } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

/** The newest installed PostgreSQL's bin folder (Debian layout), or PG_BIN. */
function binDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error(
      `no PostgreSQL server binaries in ${root}/*/bin (initdb, pg_ctl): install postgresql, or set PG_BIN to the folder that holds them.`,
    );
  return join(root, versions[0]!, 'bin');
}

/** Whether 127.0.0.1:port can be listened on right now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free port below the kernel's ephemeral range (ip_local_port_range). A port handed out by
 * `listen(0)` comes from that range, and while a test has the cluster stopped (a restart), the
 * kernel may give the same port to any outgoing connection as its local port. A restart in a
 * clean-clone CI run failed to start ("could not start server"; its log went with the folder, so
 * the address in use is the likely cause, not a seen one). Below the range nothing outgoing takes
 * the port; a failed start now also prints the server's log.
 */
async function freePort(): Promise<number> {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
  } catch {
    // not Linux: keep the usual bound
  }
  const from = Math.max(1024, low - 12_000);
  for (let i = 0; i < 100; i++) {
    const port = from + Math.floor(Math.random() * (low - from));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${from} and ${low}`);
}

const asRoot = process.getuid?.() === 0;

export class ThrowawayCluster {
  private running = false;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
  ) {}

  /**
   * initdb and start a cluster (about two seconds). `settings`: extra postgresql.conf lines, e.g.
   * `wal_level = logical` for logical replication tests.
   */
  static async create(options: { settings?: string[] } = {}): Promise<ThrowawayCluster> {
    const bin = binDir();
    const dir = mkdtempSync(join(tmpdir(), 'weft-pg-'));
    if (asRoot) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      const { stdout: gid } = await run('id', ['-g', 'postgres']);
      chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
    }
    const cluster = new ThrowawayCluster(dir, await freePort(), bin);
    await cluster.pg('initdb', [
      '-D',
      join(dir, 'data'),
      '-U',
      'postgres',
      '--auth=trust',
      '--no-sync',
      '-E',
      'UTF8',
    ]);
    writeFileSync(
      join(dir, 'data', 'postgresql.auto.conf'),
      [
        `port = ${cluster.port}`,
        `listen_addresses = '127.0.0.1'`,
        `unix_socket_directories = '${dir}'`,
        'fsync = off',
        'full_page_writes = off',
        'max_connections = 100',
        ...(options.settings ?? []),
        '',
      ].join('\n'),
    );
    if (asRoot)
      await run('chown', ['postgres:postgres', join(dir, 'data', 'postgresql.auto.conf')]);
    await cluster.start();
    return cluster;
  }

  private async pg(tool: string, args: string[]): Promise<string> {
    const path = join(this.bin, tool);
    const { stdout } = asRoot
      ? await run('runuser', ['-u', 'postgres', '--', path, ...args], { timeout: 60_000 })
      : await run(path, args, { timeout: 60_000 });
    return stdout;
  }

  get isRunning(): boolean {
    return this.running;
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Start the server and wait until it accepts connections. */
  async start(): Promise<void> {
    try {
      await this.pg('pg_ctl', [
        '-D',
        join(this.dir, 'data'),
        '-l',
        join(this.dir, 'log'),
        '-w',
        '-t',
        '30',
        'start',
      ]);
    } catch (error) {
      // the server's own reason is in its log, which is removed with the folder: say it here
      let log = '';
      try {
        log = readFileSync(join(this.dir, 'log'), 'utf8').split('\n').slice(-15).join('\n');
      } catch {
        // no log written
      }
      throw new Error(`${(error as Error).message}\nserver log (port ${this.port}):\n${log}`);
    }
    this.running = true;
  }

  /** Stop the server: `fast` (clients are disconnected) or `immediate` (no shutdown checkpoint). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    this.running = false;
    await this.pg('pg_ctl', ['-D', join(this.dir, 'data'), '-m', mode, '-w', '-t', '30', 'stop']);
  }

  /** Start the server unless it runs (a test that failed mid-outage must not break the next). */
  async ensureRunning(): Promise<void> {
    const running = await this.pg('pg_ctl', ['-D', join(this.dir, 'data'), 'status']).then(
      () => true,
      () => false,
    );
    if (!running) await this.start();
    this.running = true;
  }

  /** A fresh database on this cluster; returns its URL. */
  async createDatabase(name = `weft_${Math.random().toString(36).slice(2, 10)}`): Promise<string> {
    const client = new pg.Client({ connectionString: this.url() });
    await client.connect();
    try {
      await client.query(`create database ${name}`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  /** Stop the server (if running) and delete its folder. */
  async destroy(): Promise<void> {
    if (this.running) await this.stop('immediate').catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}
