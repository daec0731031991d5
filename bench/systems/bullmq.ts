/**
 * BullMQ on the local Redis (127.0.0.1:6379, or WEFT_BENCH_REDIS_URL) under test, as a point of
 * reference that is NOT durable per step: Redis keeps the queues in memory and, at best (AOF with
 * `appendfsync everysec`), writes them to disk once a second, so an acknowledged step can be lost
 * on a crash. The Redis here runs as configured by whoever set it up; its persistence settings
 * (`appendonly`, `appendfsync`, `save`) are read and reported with every result.
 *
 * Like graphile-worker it has no workflows: a chained step is a job whose processor adds the next
 * job (`queue.add`) before it completes. A run ends when the job of its last step completes (the
 * worker's `completed` event, emitted after the job is moved to completed in Redis). Job options
 * are BullMQ's defaults (completed jobs are kept). Every queue of a session lives under a random
 * key prefix, obliterated at the end.
 */
import { randomBytes } from 'node:crypto';
import { readProcessStats } from '../lib/proc.js';
import type { BenchName, Session, SystemTarget, Timed, Variant } from './system.js';

const CHAIN_CONCURRENCY = 1;

interface StepPayload {
  run: number;
  i: number;
  n: number;
}

export const bullmqTarget: SystemTarget = {
  id: 'bullmq',
  system: 'bullmq',
  backend: 'redis',
  packages: ['bullmq'],
  durability:
    'not durable per step: jobs live in Redis memory; the local Redis is reported with its appendonly/appendfsync/save settings (at best AOF fsynced once a second)',
  variants(bench: BenchName, options: { concurrency: number[] }): Variant[] {
    if (bench === 'fanout')
      return options.concurrency.map((c) => ({ name: `c${c}`, settings: { concurrency: c } }));
    return [{ name: `c${CHAIN_CONCURRENCY}`, settings: { concurrency: CHAIN_CONCURRENCY } }];
  },
  open: () => openBullmq(),
};

function redisUrl(): URL {
  return new URL(process.env.WEFT_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379');
}

async function openBullmq(): Promise<Session> {
  // Loaded here, not at the top: only the process that measures BullMQ imports it.
  const { Queue, Worker } = await import('bullmq');
  const url = redisUrl();
  const connection = {
    host: url.hostname,
    port: Number(url.port || 6379),
    maxRetriesPerRequest: null,
  };
  const prefix = `weft-bench-${randomBytes(4).toString('hex')}`;
  const queues = {
    chain: new Queue<StepPayload>('chain', { connection, prefix }),
    fan: new Queue<StepPayload>('fan', { connection, prefix }),
    first: new Queue<{ token: string }>('first', { connection, prefix }),
  };
  // BullMQ types its connection narrowly; it is an ioredis client, which has INFO and CONFIG.
  const admin = (await queues.chain.client) as unknown as {
    info(section: string): Promise<string>;
    config(op: 'GET', key: string): Promise<unknown>;
  };
  const info = await admin.info('server');
  const pid = Number(/process_id:(\d+)/.exec(info)?.[1] ?? 0);
  const version = /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
  const config = async (key: string): Promise<string> => {
    const reply = (await admin.config('GET', key)) as string[];
    return reply[1] ?? '';
  };
  const persistence = {
    appendonly: await config('appendonly'),
    appendfsync: await config('appendfsync'),
    save: (await config('save')) || '(none)',
  };

  type StepWorker = InstanceType<typeof Worker<StepPayload>>;
  let worker: StepWorker | undefined;
  let workerKey = '';
  let open = new Set<number>();
  let onAllDone: (() => void) | undefined;
  let failure: Error | undefined;

  const startWorker = async (queue: 'chain' | 'fan', concurrency: number): Promise<void> => {
    const key = `${queue}/${concurrency}`;
    if (worker && workerKey === key) return;
    await worker?.close();
    const target = queues[queue];
    worker = new Worker<StepPayload>(
      queue,
      async (job) => {
        const p = job.data;
        if (p.i + 1 < p.n) await target.add('step', { run: p.run, i: p.i + 1, n: p.n });
      },
      { connection, prefix, concurrency },
    );
    worker.on('completed', (job) => {
      const p = job.data;
      if (p.i === p.n - 1 && open.delete(p.run) && open.size === 0) onAllDone?.();
    });
    worker.on('failed', (_job, error) => {
      failure ??= error;
      onAllDone?.();
    });
    await worker.waitUntilReady();
    workerKey = key;
  };

  const runAll = async (queue: 'chain' | 'fan', runs: number, n: number): Promise<Timed> => {
    open = new Set(Array.from({ length: runs }, (_, k) => k));
    failure = undefined;
    const done = new Promise<void>((resolve) => (onAllDone = resolve));
    const t0 = performance.now();
    await Promise.all([...open].map((k) => queues[queue].add('step', { run: k, i: 0, n })));
    const triggeredMs = performance.now() - t0;
    await done;
    const wallMs = performance.now() - t0;
    onAllDone = undefined;
    const err = failure as Error | undefined;
    return {
      wallMs,
      triggeredMs,
      steps: runs * n,
      verify: async () => {
        if (err) throw new Error(`bullmq: a job failed: ${err.message}`);
      },
    };
  };

  let concurrency = CHAIN_CONCURRENCY;
  let latencyWorker: InstanceType<typeof Worker<{ token: string }>> | undefined;
  const started = new Map<string, number>();
  /** Latency bench: resolves the wait for a token's job when the worker reports it completed. */
  const waiters = new Map<string, () => void>();
  let latencyFailure: Error | undefined;
  let token = 0;

  return {
    database: undefined,
    settings: {
      redis: `${version} at ${url.host}`,
      ...persistence,
      prefix,
      durablePerStep: false,
    },
    serverProcess: () => (pid > 0 ? readProcessStats(pid) : Promise.resolve(undefined)),
    async configure(bench, variant) {
      concurrency = Number(variant.settings.concurrency);
      if (bench === 'latency') {
        await worker?.close();
        worker = undefined;
        if (!latencyWorker) {
          latencyWorker = new Worker<{ token: string }>(
            'first',
            async (job) => {
              if (!started.has(job.data.token)) started.set(job.data.token, performance.now());
            },
            { connection, prefix, concurrency: 1 },
          );
          latencyWorker.on('completed', (job) => {
            waiters.get(job.data.token)?.();
            waiters.delete(job.data.token);
          });
          latencyWorker.on('failed', (job, error) => {
            latencyFailure ??= error;
            if (job) waiters.get(job.data.token)?.();
          });
          await latencyWorker.waitUntilReady();
        }
        return;
      }
      await latencyWorker?.close();
      latencyWorker = undefined;
      await startWorker(bench === 'chain' ? 'chain' : 'fan', concurrency);
    },
    chain: (steps) => runAll('chain', 1, steps),
    fanout: (runs, stepsPerRun) => runAll('fan', runs, stepsPerRun),
    async latency(triggers) {
      const latenciesMs: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < triggers; i++) {
        const key = `t${token++}`;
        const completed = new Promise<void>((resolve) => waiters.set(key, resolve));
        const start = performance.now();
        await queues.first.add('first', { token: key });
        await completed;
        if (latencyFailure) throw new Error(`bullmq: a job failed: ${latencyFailure.message}`);
        const at = started.get(key);
        started.delete(key);
        if (at === undefined) throw new Error(`bullmq: the job of ${key} never started`);
        latenciesMs.push(at - start);
      }
      return { wallMs: performance.now() - t0, steps: triggers, latenciesMs };
    },
    async close() {
      await worker?.close();
      await latencyWorker?.close();
      for (const q of Object.values(queues)) {
        await q.obliterate({ force: true }).catch(() => {});
        await q.close();
      }
    },
  };
}
