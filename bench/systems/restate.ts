/**
 * Restate under test: `restate-server` (the binary `@restatedev/restate-server` ships on npm) as a
 * child process of the benchmark process, on free ports with a fresh data directory, and a
 * service deployment (`@restatedev/restate-sdk`, HTTP/2, bidirectional) served from this process
 * and registered over the admin API.
 *
 * A chained step is `ctx.run(name, fn)`: the SDK sends the step's result to the server, which
 * appends it to the invocation's journal in its log (Bifrost) and acknowledges it before the
 * handler goes on. The chain is one invocation of N `ctx.run`s; the fan-out is 1,000 invocations
 * of 3; the latency bench is one invocation of one `ctx.run` at a time.
 *
 * What Restate persists, and where: not PostgreSQL. Each journal entry is a record appended to the
 * node's log (the default `replicated` loglet, replication 1, stored by this node's own
 * log-server in RocksDB with its WAL fsynced before the append is acknowledged); the partition
 * processor then applies it to its partition store (RocksDB: invocation status, journal, outbox).
 * Its defaults otherwise (24 partitions, one node with every role).
 *
 * Runs are called through the HTTP ingress as request-response (`POST /<service>/<handler>`):
 * the response comes once the invocation has ended and its result is stored, which is the run-end
 * signal here (one HTTP/1.1 request per run, kept-alive sockets, no client-side limit).
 */
import type { Context } from '@restatedev/restate-sdk';
import { Agent, request } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { readProcessStats } from '../lib/proc.js';
import { startRestateServer, type RestateServer } from '../lib/restate-server.js';
import type { BenchName, Session, SystemTarget, Timed, Variant } from './system.js';

const SERVICE = 'bench';

export const restateTarget: SystemTarget = {
  id: 'restate',
  system: 'restate',
  backend: 'restate',
  packages: ['@restatedev/restate-sdk', '@restatedev/restate-server'],
  durability:
    "each ctx.run result appended to Restate's own log (replicated loglet, replication 1, on this node's log-server: RocksDB, WAL fsynced) and applied to its partition store (RocksDB); not PostgreSQL",
  variants(_bench: BenchName): Variant[] {
    return [{ name: 'default', settings: { partitions: 24, replication: 1 } }];
  },
  open: () => openRestate(),
};

/** Per process: when the step of each latency trigger started (keyed by its token). */
const started = new Map<string, number>();

async function openRestate(): Promise<Session> {
  // The SDK (1.17) calls Promise.withResolvers, which Node has from 22 on; this machine's Node is
  // 20 (the engine's floor). The standard definition, in this benchmark process only.
  const P = Promise as unknown as { withResolvers?: () => unknown };
  P.withResolvers ??= () => {
    let resolve!: (v: unknown) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
  // Loaded here, not at the top: only the process that measures Restate imports the SDK.
  const restate = await import('@restatedev/restate-sdk');
  const noop = async (): Promise<null> => null;
  const service = restate.service({
    name: SERVICE,
    handlers: {
      chain: async (ctx: Context, n: number) => {
        for (let i = 0; i < n; i++) await ctx.run(`s${i}`, noop);
        return n;
      },
      first: async (ctx: Context, token: string) => {
        await ctx.run('s0', async () => {
          if (!started.has(token)) started.set(token, performance.now());
          return null;
        });
        return 1;
      },
    },
  });
  const handler = restate.createEndpointHandler({ services: [service], logger: () => {} });
  const endpoint: Http2Server = createHttp2Server(handler);
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  const address = endpoint.address();
  const endpointPort = typeof address === 'object' && address ? address.port : 0;

  let server: RestateServer;
  try {
    server = await startRestateServer((line) => process.stderr.write(`${line}\n`));
  } catch (error) {
    endpoint.close();
    throw error;
  }
  try {
    await server.register(`http://127.0.0.1:${endpointPort}`);
  } catch (error) {
    await server.stop();
    endpoint.close();
    throw error;
  }

  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const ingress = new URL(server.ingressUrl);
  const call = (handlerName: string, body: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      const req = request(
        {
          agent,
          host: ingress.hostname,
          port: ingress.port,
          method: 'POST',
          path: `/${SERVICE}/${handlerName}`,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            if (res.statusCode !== 200)
              reject(new Error(`restate: ${handlerName} answered ${res.statusCode}: ${text}`));
            else resolve(JSON.parse(text));
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      // A lost invocation costs an error, not a hang (the run's longest call is well under this).
      req.setTimeout(120_000, () =>
        req.destroy(new Error(`restate: ${handlerName} got no answer within 120 s`)),
      );
      req.end(payload);
    });

  const runAll = async (runs: number, n: number): Promise<Timed> => {
    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: runs }, () => call('chain', n)));
    const wallMs = performance.now() - t0;
    return {
      wallMs,
      steps: runs * n,
      verify: async () => {
        if (results.some((r) => r !== n))
          throw new Error('restate: an invocation returned an unexpected result');
      },
    };
  };

  let token = 0;
  return {
    database: undefined,
    settings: {
      server: `restate-server ${server.version}`,
      ingress: 'HTTP/1.1 request-response, keep-alive',
      deployment: 'HTTP/2 bidirectional (same process)',
    },
    serverProcess: () => readProcessStats(server.pid),
    async configure() {},
    chain: (steps) => runAll(1, steps),
    fanout: (runs, stepsPerRun) => runAll(runs, stepsPerRun),
    async latency(triggers) {
      const latenciesMs: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < triggers; i++) {
        const key = `t${token++}`;
        const start = performance.now();
        await call('first', key);
        const at = started.get(key);
        started.delete(key);
        if (at === undefined) throw new Error(`restate: the step of ${key} never started`);
        latenciesMs.push(at - start);
      }
      return { wallMs: performance.now() - t0, steps: triggers, latenciesMs };
    },
    async close() {
      agent.destroy();
      await server.stop();
      await new Promise<void>((resolve) => endpoint.close(() => resolve()));
    },
  };
}
