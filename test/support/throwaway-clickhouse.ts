/**
 * A ClickHouse server of a test's own: Debian's `clickhouse-server` (18.16) started with a config
 * written here (a temp data folder, free HTTP and TCP ports on 127.0.0.1, the `default` user
 * without password), so tests can stop and start it without touching anything shared. As root
 * (CI containers) it runs as the `clickhouse` user the package creates, via runuser.
 *
 * `clickhouseBinary()` is undefined when the server is not installed: analytics tests skip with
 * that message (`.ci/run` installs it, so in CI they run).
 */
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CANDIDATES = [
  '/usr/sbin/clickhouse-server',
  '/usr/bin/clickhouse-server',
  '/usr/bin/clickhouse',
];

export function clickhouseBinary(): string | undefined {
  if (process.env.CLICKHOUSE_SERVER_BIN) return process.env.CLICKHOUSE_SERVER_BIN;
  return CANDIDATES.find((p) => existsSync(p));
}

export const CLICKHOUSE_ABSENT =
  'clickhouse-server is not installed (apt-get install clickhouse-server, as .ci/run does): analytics tests skipped';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

const asRoot = process.getuid?.() === 0;

export class ThrowawayClickhouse {
  private child: ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly httpPort: number,
    readonly tcpPort: number,
    private readonly bin: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  static async create(): Promise<ThrowawayClickhouse> {
    const bin = clickhouseBinary();
    if (!bin) throw new Error(CLICKHOUSE_ABSENT);
    const dir = mkdtempSync(join(tmpdir(), 'weft-ch-'));
    const ch = new ThrowawayClickhouse(dir, await freePort(), await freePort(), bin);
    mkdirSync(join(dir, 'data'));
    mkdirSync(join(dir, 'tmp'));
    writeFileSync(
      join(dir, 'config.xml'),
      `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${dir}/server.log</log><errorlog>${dir}/error.log</errorlog><console>0</console></logger>
  <http_port>${ch.httpPort}</http_port>
  <tcp_port>${ch.tcpPort}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/tmp/</user_files_path>
  <format_schema_path>${dir}/tmp/</format_schema_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <timezone>UTC</timezone>
</yandex>
`,
    );
    writeFileSync(
      join(dir, 'users.xml'),
      `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`,
    );
    if (asRoot) execFileSync('chown', ['-R', 'clickhouse:clickhouse', dir]);
    else chownSync(dir, process.getuid!(), process.getgid!());
    await ch.start();
    return ch;
  }

  get isRunning(): boolean {
    return this.child !== undefined;
  }

  /** Start the server and wait until `SELECT 1` answers over HTTP (a few seconds). */
  async start(): Promise<void> {
    const args = [`--config-file=${join(this.dir, 'config.xml')}`];
    const child = asRoot
      ? spawn('runuser', ['-u', 'clickhouse', '--', this.bin, ...args], { stdio: 'ignore' })
      : spawn(this.bin, args, { stdio: 'ignore' });
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const res = await fetch(`${this.url}/?query=SELECT%201`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (!this.child)
        throw new Error(`clickhouse-server exited at start; see ${this.dir}/error.log`);
      if (Date.now() > deadline)
        throw new Error(`clickhouse-server did not answer in 60 s (${this.dir})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stop the server (SIGKILL when `kill`, else SIGTERM) and wait for the process to end. */
  async stop(kill = false): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    // runuser forwards SIGTERM; a SIGKILL must reach the server itself.
    if (kill && asRoot) execFileSync('pkill', ['-KILL', '-P', String(child.pid)]);
    child.kill(kill ? 'SIGKILL' : 'SIGTERM');
    await exited;
    this.child = undefined;
    // the port is free once the server is gone
    for (let i = 0; i < 100; i++) {
      try {
        await fetch(`${this.url}/?query=SELECT%201`);
        await new Promise((r) => setTimeout(r, 100));
      } catch {
        return;
      }
    }
  }

  async destroy(): Promise<void> {
    await this.stop(true).catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}
