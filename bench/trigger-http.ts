/**
 * Starting many runs over HTTP: N single triggers sent at once (POST /workflows/{id}/runs, over a
 * real socket through `weft server`'s app) against the same N as batch requests of 500
 * (POST /workflows/{id}/runs/batch). No worker runs: this times the acknowledgement (every run
 * committed), not the runs. Prints one JSON line per repetition and the medians, with the client's
 * CPU (this process: the HTTP clients and the server, both in here) and the database's.
 *
 *   node --import tsx bench/trigger-http.ts [--runs 1000] [--reps 3]
 *
 * PostgreSQL only (WEFT_BENCH_PG_URL, default the local 5432); one fresh database, dropped after.
 */
import { parseArgs } from 'node:util';
import { Agent, request } from 'node:http';
import { silentLogger } from '../src/engine/logger.js';
import { defineWorkflow, Engine } from '../src/index.js';
import { createApp, startServer } from '../src/server/index.js';
import { ServerProbe, serverCpuMs } from './lib/postgres.js';
import { openWeftDatabase } from './lib/weft-database.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '1000' }, reps: { type: 'string', default: '3' } },
});
const RUNS = Number(values.runs);
const REPS = Number(values.reps);
const BATCH = 500;

const { db, stores, environmentId } = await openWeftDatabase('http');
const engine = await Engine.start({
  stores,
  environmentId,
  workflows: [defineWorkflow('one').step('s0', () => null)],
  worker: false,
  logger: silentLogger(),
});
const key = await stores.control.createApiKey(environmentId, 'bench');
const server = await startServer(createApp({ stores, logger: silentLogger() }), { port: 0 });
// keep-alive sockets, 64 at most: the single triggers are not queued behind each other in the
// client, and no socket is opened per request
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const post = (path: string, body: unknown): Promise<void> =>
  new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = request(
      `${server.url}/api/v1${path}`,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${key.token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode === 201 || res.statusCode === 200) resolve();
          else reject(new Error(`${path}: ${res.statusCode} ${Buffer.concat(chunks).toString()}`));
        });
      },
    );
    req.on('error', reject);
    req.end(text);
  });

const ways = {
  single: () =>
    Promise.all(Array.from({ length: RUNS }, (_, i) => post('/workflows/one/runs', { input: i }))),
  batch: async () => {
    const requests = [];
    for (let from = 0; from < RUNS; from += BATCH) {
      const items = Array.from({ length: Math.min(BATCH, RUNS - from) }, (_, i) => ({
        input: from + i,
      }));
      requests.push(post('/workflows/one/runs/batch', { items }));
    }
    await Promise.all(requests);
  },
};

const probe = await ServerProbe.open(db.name);
const results: Record<string, Array<{ ms: number; clientMs: number; serverMs: number }>> = {};
await ways.single(); // warm-up, both ways
await ways.batch();
for (let rep = 1; rep <= REPS; rep++) {
  // interleaved, the order rotated each repetition
  const order = rep % 2 ? (['single', 'batch'] as const) : (['batch', 'single'] as const);
  for (const way of order) {
    const cpu0 = process.cpuUsage();
    const s0 = await probe.snapshot();
    const t0 = performance.now();
    await ways[way]();
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const serverMs = serverCpuMs(s0, await probe.snapshot()) ?? NaN;
    const row = {
      ms: Math.round(ms),
      clientMs: Number(((cpu.user + cpu.system) / 1000 / RUNS).toFixed(3)),
      serverMs: Number((serverMs / RUNS).toFixed(3)),
    };
    (results[way] ??= []).push(row);
    console.log(JSON.stringify({ type: 'rep', way, rep, runs: RUNS, ...row }));
  }
}
await probe.close();
await server.close();
agent.destroy();
await engine.stop();
await stores.close();
await db.drop();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [way, rows] of Object.entries(results))
  console.log(
    JSON.stringify({
      type: 'median',
      way,
      runs: RUNS,
      ms: median(rows.map((r) => r.ms)),
      runsPerSecond: Math.round((RUNS / median(rows.map((r) => r.ms))) * 1000),
      processCpuMsPerRun: median(rows.map((r) => r.clientMs)),
      databaseCpuMsPerRun: median(rows.map((r) => r.serverMs)),
    }),
  );
