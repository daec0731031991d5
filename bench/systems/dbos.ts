/**
 * DBOS Transact 5.3.0 under test: a chained run is one workflow with `DBOS.runStep` calls in
 * sequence (each step's output checkpointed before the next starts).
 *
 * Two ways to start the fan-out's 1,000 workflows, both reported:
 * - `direct`: `DBOS.startWorkflow(wf)()` — the workflow status row is written and the workflow
 *   runs at once in this process. Its end is the workflow's own promise (`getResult` on the
 *   handle awaits it), which settles after the final status is written.
 * - `queue-cN`: enqueued on a DBOS queue (worker concurrency N, the highest concurrency swept),
 *   the durable-queue model that
 *   Weft's trigger → claim follows. DBOS dispatches queues by polling; the queue's polling
 *   interval is set to 50 ms (default 1 s, which would measure the poll, not the engine). The end
 *   of queued runs is found by polling `workflow_status` every 5 ms on a connection of the
 *   harness (excluded from the server CPU), since their handles poll once a second.
 *
 * Otherwise DBOS's defaults: system database pool 10, LISTEN/NOTIFY on. Logging goes to a no-op
 * logger.
 */
import { connectHarnessClient, createDatabase } from '../lib/postgres.js';
import type { BenchName, Session, Sizes, SystemTarget, Timed, Variant } from './system.js';

const QUEUE_POLL_MS = 50;
const END_POLL_MS = 5;

export const dbosTargets: SystemTarget[] = [
  {
    id: 'dbos-pg',
    system: 'dbos',
    backend: 'postgres',
    packages: ['@dbos-inc/dbos-sdk'],
    durability:
      "PostgreSQL: the workflow_status row at start and end, and one operation_outputs row per step (the step's checkpoint) committed before the next step",
    variants(bench: BenchName, options: { concurrency: number[] }): Variant[] {
      if (bench === 'chain') return [{ name: 'direct', settings: { start: 'direct' } }];
      if (bench === 'latency')
        return [
          { name: 'direct', settings: { start: 'direct' } },
          {
            name: 'queue-c1',
            settings: { start: 'queue', workerConcurrency: 1, queuePollMs: QUEUE_POLL_MS },
          },
        ];
      // One queue variant, at the highest swept concurrency: with a 50 ms dispatch poll a queue
      // starts at most `workerConcurrency` workflows per poll, so the highest is its best case.
      const c = Math.max(...options.concurrency);
      return [
        { name: 'direct', settings: { start: 'direct' } },
        {
          name: `queue-c${c}`,
          settings: { start: 'queue', workerConcurrency: c, queuePollMs: QUEUE_POLL_MS },
        },
      ];
    },
    open: (sizes) => openDbos(sizes),
  },
  {
    id: 'dbos-pglite',
    system: 'dbos',
    backend: 'pglite',
    unavailable:
      "DBOS's system database is PostgreSQL reached through `pg` (a connection pool plus a LISTEN connection) and DBOS 5.3.0 has no embedded or PGlite backend; PGlite has no server socket, and a socket bridge (@electric-sql/pglite-socket) is not a dependency of this repo.",
    variants: () => [],
    open: () => Promise.reject(new Error('DBOS cannot run on PGlite')),
  },
];

const silent = { info() {}, debug() {}, warn() {}, error() {} };

async function openDbos(sizes: Sizes): Promise<Session> {
  // Loaded here, not at the top: only the process that measures DBOS pays for importing it.
  const { DBOS } = await import('@dbos-inc/dbos-sdk');
  const db = await createDatabase('dbos');
  const step = async (): Promise<null> => null;
  const chained = async (n: number): Promise<number> => {
    for (let i = 0; i < n; i++) await DBOS.runStep(step, { name: `s${i}` });
    return n;
  };
  const chainWf = DBOS.registerWorkflow((n: number) => chained(n), {
    name: `chain-${sizes.chainSteps}`,
  });
  const fanWf = DBOS.registerWorkflow((n: number) => chained(n), {
    name: `fanout-${sizes.fanoutSteps}`,
  });
  /** Latency bench: when each token's step began. */
  const started = new Map<string, number>();
  const firstWf = DBOS.registerWorkflow(
    async (token: string) => {
      await DBOS.runStep(
        async () => {
          if (!started.has(token)) started.set(token, performance.now());
          return null;
        },
        { name: 's0' },
      );
      return 1;
    },
    { name: 'first-step' },
  );
  let tokens = 0;
  DBOS.setConfig({ name: 'weft-bench', systemDatabaseUrl: db.url, logger: silent });
  await DBOS.launch();

  const watcher = await connectHarnessClient(db.url, 'watch');
  let variant: Variant = { name: 'direct', settings: { start: 'direct' } };
  const queues = new Set<string>();

  const direct = async (wf: typeof chainWf, runs: number, n: number): Promise<Timed> => {
    const t0 = performance.now();
    const handles = await Promise.all(
      Array.from({ length: runs }, () => DBOS.startWorkflow(wf)(n)),
    );
    const triggeredMs = performance.now() - t0;
    const results = await Promise.all(handles.map((h) => h.getResult()));
    const wallMs = performance.now() - t0;
    return {
      wallMs,
      triggeredMs,
      steps: runs * n,
      verify: async () => {
        if (results.some((r) => r !== n))
          throw new Error('dbos: a workflow returned an unexpected result');
      },
    };
  };

  const queued = async (wf: typeof chainWf, runs: number, n: number): Promise<Timed> => {
    const queueName = `bench-c${String(variant.settings.workerConcurrency)}`;
    const t0 = performance.now();
    const handles = await Promise.all(
      Array.from({ length: runs }, () => DBOS.startWorkflow(wf, { queueName })(n)),
    );
    const triggeredMs = performance.now() - t0;
    const ids = handles.map((h) => h.workflowID);
    for (;;) {
      const rows = await watcher.query<{ done: number }>(
        `select count(*)::int as done from dbos.workflow_status where workflow_uuid = any($1) and status in ('SUCCESS', 'ERROR')`,
        [ids],
      );
      if (rows.rows[0]!.done === runs) break;
      await new Promise((resolve) => setTimeout(resolve, END_POLL_MS));
    }
    const wallMs = performance.now() - t0;
    return {
      wallMs,
      triggeredMs,
      steps: runs * n,
      verify: async () => {
        const results = await Promise.all(handles.map((h) => h.getResult()));
        if (results.some((r) => r !== n))
          throw new Error('dbos: a queued workflow did not succeed');
      },
    };
  };

  return {
    database: db.name,
    settings: { systemDatabasePoolSize: 10, useListenNotify: true },
    async configure(_bench, v) {
      variant = v;
      if (v.settings.start === 'queue') {
        const name = `bench-c${String(v.settings.workerConcurrency)}`;
        if (!queues.has(name)) {
          await DBOS.registerQueue(name, {
            workerConcurrency: Number(v.settings.workerConcurrency),
            minPollingIntervalMs: QUEUE_POLL_MS,
          });
          queues.add(name);
        }
      }
    },
    chain: (steps) => direct(chainWf, 1, steps),
    fanout: (runs, stepsPerRun) =>
      variant.settings.start === 'queue'
        ? queued(fanWf, runs, stepsPerRun)
        : direct(fanWf, runs, stepsPerRun),
    async latency(triggers) {
      const queueName =
        variant.settings.start === 'queue'
          ? `bench-c${String(variant.settings.workerConcurrency)}`
          : undefined;
      const latenciesMs: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < triggers; i++) {
        const token = `t${tokens++}`;
        const start = performance.now();
        const handle = await DBOS.startWorkflow(firstWf, queueName ? { queueName } : {})(token);
        if (queueName) {
          // A queued handle's getResult polls once a second: watch the status row instead.
          for (;;) {
            const rows = await watcher.query<{ status: string }>(
              `select status from dbos.workflow_status where workflow_uuid = $1`,
              [handle.workflowID],
            );
            const status = rows.rows[0]?.status;
            if (status === 'SUCCESS' || status === 'ERROR') break;
            await new Promise((resolve) => setTimeout(resolve, END_POLL_MS));
          }
        }
        if ((await handle.getResult()) !== 1)
          throw new Error(`dbos: workflow ${handle.workflowID} did not succeed`);
        const at = started.get(token);
        started.delete(token);
        if (at === undefined) throw new Error(`dbos: the step of ${token} never started`);
        latenciesMs.push(at - start);
      }
      return { wallMs: performance.now() - t0, steps: triggers, latenciesMs };
    },
    async close() {
      await watcher.end().catch(() => {});
      await DBOS.shutdown();
      await db.drop();
    },
  };
}
