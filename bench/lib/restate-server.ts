/**
 * A throwaway Restate server for the bench: the binary that `@restatedev/restate-server` ships on
 * npm, started as a child process on free local ports with a data directory of its own (deleted
 * at the end), in its default single-node configuration (every role on one node, its log
 * replicated once, onto this node's own log-server).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RestateServer {
  ingressUrl: string;
  adminUrl: string;
  dataDir: string;
  pid: number;
  version: string;
  /** Register a deployment (the SDK endpoint) and wait until the admin API lists its services. */
  register(endpointUrl: string): Promise<void>;
  /** SIGTERM, then SIGKILL after 10 s; removes the data directory. */
  stop(): Promise<void>;
}

/** A port the kernel has just handed out and released (free for the child to take). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function binaryPath(): string {
  const require = createRequire(import.meta.url);
  return require.resolve(`@restatedev/restate-server-${platform()}-${arch()}/bin/restate-server`);
}

export async function startRestateServer(log: (line: string) => void): Promise<RestateServer> {
  const require = createRequire(import.meta.url);
  const version = (require('@restatedev/restate-server/package.json') as { version: string })
    .version;
  const [ingress, admin, fabric, pgsql] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-bench-restate-'));
  const child: ChildProcess = spawn(
    binaryPath(),
    ['--no-logo', '--base-dir', dataDir, '--node-name', 'bench'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        RESTATE_LISTEN_MODE: 'tcp',
        RESTATE_BIND_ADDRESS: `127.0.0.1:${fabric}`,
        RESTATE_INGRESS__BIND_ADDRESS: `127.0.0.1:${ingress}`,
        RESTATE_ADMIN__BIND_ADDRESS: `127.0.0.1:${admin}`,
        RESTATE_ADMIN__QUERY_ENGINE__PGSQL_BIND_ADDRESS: `127.0.0.1:${pgsql}`,
        RESTATE_DISABLE_TELEMETRY: 'true',
        RESTATE_LOG_FILTER: 'warn',
        RESTATE_LOG_FORMAT: 'compact',
        RESTATE_LOG_DISABLE_ANSI_CODES: 'true',
      },
    },
  );
  // However the benchmark process ends, the server must not outlive it (it holds ports and disk).
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = `restate-server exited (code ${code}, signal ${signal})`;
      process.off('exit', killOnExit);
      resolve();
    }),
  );
  // Its warnings go to the bench's stderr; nothing of it reaches stdout (JSON lines only).
  const relay = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      // The server checks GitHub for a newer release; the machine may be offline. Not our concern.
      if (line.trim() && !/octocrab|client error \(Connect\)/.test(line)) log(`restate: ${line}`);
    }
  };
  child.stdout!.on('data', relay);
  child.stderr!.on('data', relay);

  const ingressUrl = `http://127.0.0.1:${ingress}`;
  const adminUrl = `http://127.0.0.1:${admin}`;
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(killer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    await waitFor(60_000, async () => {
      if (exited) throw new Error(exited);
      const [a, i] = await Promise.all([
        fetch(`${adminUrl}/health`).then((r) => r.ok),
        fetch(`${ingressUrl}/restate/health`).then((r) => r.ok),
      ]).catch(() => [false, false]);
      return a && i;
    });
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    ingressUrl,
    adminUrl,
    dataDir,
    pid: child.pid!,
    version,
    async register(endpointUrl: string): Promise<void> {
      const res = await fetch(`${adminUrl}/deployments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uri: endpointUrl, force: true }),
      });
      if (!res.ok)
        throw new Error(
          `restate: registering ${endpointUrl} answered ${res.status}: ${await res.text()}`,
        );
      // The ingress learns of new services asynchronously: probe until it routes to them.
      const { services } = (await res.json()) as { services: { name: string }[] };
      await waitFor(30_000, async () => {
        const probes = await Promise.all(
          services.map((s) =>
            fetch(`${ingressUrl}/restate/health`).then(() =>
              fetch(`${adminUrl}/services/${s.name}`).then((r) => r.ok),
            ),
          ),
        );
        return probes.every(Boolean);
      });
    },
    stop,
  };
}

async function waitFor(ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`restate: not ready after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
