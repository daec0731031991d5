/**
 * The parent side of the crash tests: start worker processes (crash-worker.ts), kill, pause and
 * continue them, and look at the database the way an operator would after a crash.
 *
 * Every process started here is tracked; `killCrashWorkers()` (afterEach) SIGKILLs whatever is
 * left, paused ones included, and waits for them to exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Executor } from '../../src/store/executor.js';
import { CRASH_WORKER_ENV, type CrashWorkerConfig } from './crash-workflows.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const workerScript = fileURLToPath(new URL('./crash-worker.ts', import.meta.url));

/** Short leases so crashes are recovered in about a second; heartbeats well inside them. */
export const CRASH_WORKER_DEFAULTS = {
  leaseMs: 1500,
  heartbeatMs: 250,
  concurrency: 4,
  pollIntervalMs: 50,
  stepMs: [0, 0] as [number, number],
};

export type CrashWorkerOptions = Pick<
  CrashWorkerConfig,
  'databaseUrl' | 'environmentId' | 'workerId'
> &
  Partial<Omit<CrashWorkerConfig, 'databaseUrl' | 'environmentId' | 'workerId'>>;

interface LineWaiter {
  match: (line: string) => boolean;
  resolve: (line: string) => void;
}

const live = new Set<CrashWorker>();

export class CrashWorker {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderr = '';
  private partial = '';
  private readonly waiters = new Set<LineWaiter>();
  private exitedAs: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(
    readonly workerId: string,
    readonly child: ChildProcess,
  ) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) {
        this.lines.push(line);
        for (const w of this.waiters) {
          if (w.match(line)) {
            this.waiters.delete(w);
            w.resolve(line);
          }
        }
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitedAs = { code, signal };
        live.delete(this);
        resolve(this.exitedAs);
      });
    });
  }

  /** Start a worker process and wait until it is claiming. */
  static async start(options: CrashWorkerOptions): Promise<CrashWorker> {
    const config: CrashWorkerConfig = { ...CRASH_WORKER_DEFAULTS, ...options };
    const child = spawn(process.execPath, ['--import', 'tsx', workerScript], {
      cwd: repoRoot,
      env: { ...process.env, [CRASH_WORKER_ENV]: JSON.stringify(config) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const worker = new CrashWorker(config.workerId, child);
    live.add(worker);
    await worker.waitForLine((line) => line.includes('"crashWorker":"ready"'), 30_000);
    return worker;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exitedAs === undefined;
  }

  /** How the process ended and what it last printed, for an assertion's message. */
  describe(): string {
    const end = this.exitedAs
      ? `exited (code ${this.exitedAs.code}, signal ${this.exitedAs.signal})`
      : 'running';
    return `crash worker ${this.workerId} (pid ${this.child.pid}) ${end}. stderr:\n${this.stderr}\nstdout:\n${this.lines.slice(-20).join('\n')}`;
  }

  /** Resolve with the first stdout line (already seen or to come) that matches. */
  waitForLine(match: (line: string) => boolean, timeoutMs = 15_000): Promise<string> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      const waiter: LineWaiter = {
        match,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const fail = (why: string) => {
        this.waiters.delete(waiter);
        clearTimeout(timer);
        reject(
          new Error(
            `crash worker ${this.workerId} (pid ${this.child.pid}) ${why}. stderr:\n${this.stderr}\nstdout:\n${this.lines.slice(-20).join('\n')}`,
          ),
        );
      };
      const timer = setTimeout(
        () => fail(`printed no matching line within ${timeoutMs} ms`),
        timeoutMs,
      );
      this.waiters.add(waiter);
      void this.exited.then((e) => {
        if (this.waiters.has(waiter))
          fail(`exited (code ${e.code}, signal ${e.signal}) before printing a matching line`);
      });
    });
  }

  /** Send a signal; for SIGKILL, wait until the process is gone. */
  async signal(signal: NodeJS.Signals): Promise<void> {
    if (!this.alive) return;
    this.child.kill(signal);
    if (signal === 'SIGKILL') await this.exited;
  }
}

/** SIGKILL every worker process still running (paused ones too) and wait for them to exit. */
export async function killCrashWorkers(): Promise<void> {
  await Promise.all([...live].map((w) => w.signal('SIGKILL')));
}

/** The side table where step code records each start (see crash-workflows.ts). */
export async function createStartsTable(db: Executor): Promise<void> {
  await db.exec(`create table if not exists public.crash_starts (
    id bigint generated always as identity primary key,
    run_id text not null,
    step_key text not null,
    attempt integer not null,
    worker_id text not null,
    idempotency_key text not null,
    started_at timestamptz not null default clock_timestamp()
  )`);
}

export interface StartRow {
  run_id: string;
  step_key: string;
  attempt: number;
  worker_id: string;
  idempotency_key: string;
}

export async function listStarts(db: Executor, runIds: string[]): Promise<StartRow[]> {
  const rows = await db.query<StartRow>(
    `select run_id, step_key, attempt, worker_id, idempotency_key from public.crash_starts where run_id = any($1::text[]) order by id`,
    [runIds],
  );
  return rows.rows;
}

/** Database sessions a worker process opened: its pool (`crash-<id>`) and LISTEN (`…-listen`). */
export async function countBackends(db: Executor, workerId: string): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity
      where datname = current_database() and application_name in ($1, $1 || '-listen')`,
    [`crash-${workerId}`],
  );
  return rows.rows[0]!.n;
}

/**
 * After a worker was killed, wait until the server has closed its sessions: a statement the
 * process sent just before dying still runs to its end, so only then is what it left behind final.
 */
export async function waitForBackendsGone(
  db: Executor,
  workerId: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await countBackends(db, workerId)) > 0) {
    if (Date.now() > deadline)
      throw new Error(`sessions of killed worker ${workerId} are still open after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * pg_terminate_backend the sessions of a worker process (with `activeOnly`, only those running a
 * statement right now); returns how many were terminated.
 */
export async function terminateBackends(
  db: Executor,
  workerId: string,
  options: { activeOnly?: boolean } = {},
): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `select count(*) filter (where pg_terminate_backend(pid))::int as n
       from pg_stat_activity
      where datname = current_database() and application_name in ($1, $1 || '-listen')
        and (not $2 or state = 'active')`,
    [`crash-${workerId}`, options.activeOnly ?? false],
  );
  return rows.rows[0]!.n;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll until `check` returns a value other than undefined. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A small seeded PRNG (mulberry32), so a failing kill schedule can be replayed with its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
