/**
 * The stage of the chaos scenarios: a throwaway PostgreSQL cluster of their own (restarted at will,
 * test/support/throwaway-cluster.ts) holding Weft's database, the side-effect ledger in a separate
 * database on the shared server (never restarted), real `weft worker` and `weft server` processes
 * (test/support/cli-process.ts), and an Engine in the test process that only triggers — it runs no
 * worker, reaper or timer, so every step, reap and wake-up is done by the processes under test.
 *
 * Seeds: `chaosSeed()` reads WEFT_CHAOS_SEED or picks one, and the scenario prints it; every random
 * choice of a scenario (whom to kill, when, which backend to cut) comes from `seededRandom(seed)`.
 * Sizes: WEFT_CHAOS_SCALE multiplies run counts and durations (1 in CI, more in `npm run soak`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Engine } from '../../src/engine/engine.js';
import { silentLogger } from '../../src/engine/logger.js';
import { ensureEnvironment } from '../../src/engine/tenant.js';
import { createPgExecutor } from '../../src/store/pg-executor.js';
import { TERMINAL_RUN_STATUSES } from '../../src/store/rows.js';
import { createStores, type Stores } from '../../src/store/stores.js';
import { runCli, startCli, type CliProcess } from '../support/cli-process.js';
import { seededRandom, sleep } from '../support/crash-process.js';
import { createPgDatabase } from '../support/databases.js';
import { ThrowawayCluster } from '../support/throwaway-cluster.js';
import {
  checkLedger,
  createLedgerTable,
  LEDGER_ENV,
  pidOfWorkerId,
  type LedgerReport,
  type RunExpectation,
} from './ledger.js';

export const CHAOS_MODULE = fileURLToPath(new URL('./chaos-workflows.ts', import.meta.url));
export const SCHEMA = 'weft_loc_a0';
const ENVIRONMENT = 'chaos';

/** WEFT_CHAOS_SCALE (default 1): run counts and fault durations are multiplied by it. */
export const SCALE = Math.max(0.1, Number(process.env.WEFT_CHAOS_SCALE ?? 1));
export const scaled = (n: number) => Math.max(1, Math.round(n * SCALE));
/** A time budget (test timeout, wait for the runs' end) that grows with the load. */
export const budget = (ms: number) => Math.round(ms * Math.max(1, SCALE));

export function chaosSeed(scenario: string): { seed: number; random: () => number } {
  const seed = Number(process.env.WEFT_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`[chaos ${scenario}] seed ${seed} (replay: WEFT_CHAOS_SEED=${seed})`);
  return { seed, random: seededRandom(seed) };
}

export interface WorkerTimings {
  lease?: string;
  heartbeat?: string;
  reaperInterval?: string;
  concurrency?: number;
  /** each code step holds a random 0..stepMs after its ledger append */
  stepMs?: number;
}

export class ChaosStage {
  readonly workers: CliProcess[] = [];
  /** every worker ever started here, stopped and killed ones included (their logs) */
  readonly everyWorker: CliProcess[] = [];
  readonly servers: CliProcess[] = [];
  /** worker id → pid, from each worker's "worker started" line */
  readonly pids = new Map<string, number>();
  private readonly dir = mkdtempSync(join(tmpdir(), 'weft-chaos-'));
  private adminKey: string | undefined;

  private constructor(
    readonly cluster: ThrowawayCluster,
    readonly url: string,
    readonly stores: Stores,
    readonly engine: Engine,
    readonly ledger: pg.Pool,
    readonly ledgerUrl: string,
    private readonly dropLedger: () => Promise<void>,
  ) {}

  static async create(): Promise<ChaosStage> {
    const cluster = await ThrowawayCluster.create();
    // ThrowawayCluster turns synchronous_commit off for speed; an immediate shutdown is a crash
    // of the server, and with it off the last acknowledged commits are lost (a claim the worker
    // already acted on is undone, and its attempt number is handed out again). Weft's promise
    // ("acknowledged means durable") assumes it on, the default: put it back.
    const admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    await admin.query(`alter system set synchronous_commit = 'on'`);
    await admin.query('select pg_reload_conf()');
    await admin.end();
    const url = await cluster.createDatabase('weft_chaos');
    const stores = createStores({
      control: createPgExecutor({ connectionString: url, max: 6, applicationName: 'chaos-test' }),
    });
    await stores.migrate();
    const environmentId = await ensureEnvironment(stores.control, { environment: ENVIRONMENT });
    const engine = await Engine.start({
      stores,
      environmentId,
      workflows: [],
      logger: silentLogger(),
      worker: false,
      reaperIntervalMs: false,
      timerIntervalMs: false,
      scheduler: false,
    });
    const ledgerDb = await createPgDatabase('ledger');
    const ledger = new pg.Pool({ connectionString: ledgerDb.url, max: 4 });
    ledger.on('error', () => {});
    await createLedgerTable(ledger);
    return new ChaosStage(cluster, url, stores, engine, ledger, ledgerDb.url, ledgerDb.drop);
  }

  /** A `weft worker` process on this stage's database (or `databaseUrl`, e.g. through a proxy). */
  async startWorker(timings: WorkerTimings = {}, databaseUrl = this.url): Promise<CliProcess> {
    const worker = startCli(
      [
        'worker',
        '--workflows',
        CHAOS_MODULE,
        '--environment',
        ENVIRONMENT,
        '--lease',
        timings.lease ?? '2s',
        '--heartbeat',
        timings.heartbeat ?? '400ms',
        '--reaper-interval',
        timings.reaperInterval ?? '500ms',
        '--concurrency',
        String(timings.concurrency ?? 8),
        '--drain-timeout',
        '1s',
      ],
      {
        cwd: this.dir,
        env: {
          DATABASE_URL: databaseUrl,
          [LEDGER_ENV]: this.ledgerUrl,
          CHAOS_STEP_MS: String(timings.stepMs ?? 0),
          WEFT_LOG_LEVEL: 'info',
        },
      },
    );
    this.workers.push(worker);
    this.everyWorker.push(worker);
    const started = await worker.waitFor(
      'stdout',
      /"workerId":"([^"]+)"[^\n]*worker started/,
      60_000,
    );
    this.pids.set(started[1]!, worker.child.pid!);
    return worker;
  }

  /** A `weft server` process on port 0; resolves with its URL. */
  async startServer(): Promise<{ process: CliProcess; url: string }> {
    const server = startCli(['server', '--port', '0', '--drain-timeout', '2s'], {
      cwd: this.dir,
      env: { DATABASE_URL: this.url },
    });
    this.servers.push(server);
    const m = await server.waitFor(
      'stdout',
      /"url":"(http:\/\/[^"]+)"[^\n]*server listening/,
      60_000,
    );
    return { process: server, url: m[1]! };
  }

  /** An admin key of the chaos environment (made once with `weft keys create`). */
  async key(): Promise<string> {
    if (this.adminKey) return this.adminKey;
    const made = await runCli(
      [
        'keys',
        'create',
        '--scope',
        'admin',
        '--environment',
        ENVIRONMENT,
        '--label',
        'chaos',
        '--json',
      ],
      { cwd: this.dir, env: { DATABASE_URL: this.url }, timeoutMs: 60_000 },
    );
    if (made.code !== 0) throw new Error(`weft keys create failed: ${made.stderr}`);
    const body = JSON.parse(made.stdout) as { key?: string; token?: string };
    this.adminKey = (body.key ?? body.token)!;
    return this.adminKey;
  }

  /**
   * Wait until the reaper's grace after a server start is over (15 s after
   * pg_postmaster_start_time(), docs/semantics.md "Database outages"): before then no lease is
   * reaped, so a fault that should be recovered by reaping (a pause, a partition) would only wait.
   */
  async reaperGraceOver(): Promise<void> {
    const rows = await this.stores.controlDb.query<{ ms: number }>(
      `select greatest(0, extract(epoch from (pg_postmaster_start_time() + interval '15.5 seconds' - now())) * 1000)::int as ms`,
    );
    await sleep(rows.rows[0]!.ms);
  }

  /** Stop every worker (SIGTERM, drained; SIGKILL after 3 s), so the next scenario starts clean. */
  async stopWorkers(): Promise<void> {
    const all = this.workers.splice(0);
    for (const w of all) if (w.child.signalCode === null) w.child.kill('SIGCONT');
    await Promise.all(all.map((w) => w.stop(3_000)));
  }

  /** Worker log lines that mention any of these strings (to explain a violation). */
  logLines(needles: string[]): string[] {
    return this.everyWorker.flatMap((w, i) =>
      w
        .stdout()
        .split('\n')
        .filter((l) => needles.some((n) => l.includes(n)))
        .map((l) => `w${i}(${w.child.pid}) ${l}`),
    );
  }

  async kill(worker: CliProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (worker.child.exitCode !== null || worker.child.signalCode !== null) return;
    const exited = new Promise((resolve) => worker.child.once('exit', resolve));
    worker.child.kill(signal);
    if (signal === 'SIGKILL') await exited;
  }

  async trigger(workflowId: string, inputs: unknown[], parallel = 8): Promise<string[]> {
    const ids: string[] = new Array(inputs.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        for (let i = next++; i < inputs.length; i = next++)
          ids[i] = (await this.engine.trigger(workflowId, inputs[i])).run.id;
      }),
    );
    return ids;
  }

  /** Approvals of these runs waiting now: token and run. */
  async waitingApprovals(runIds: string[]): Promise<Array<{ token: string; runId: string }>> {
    const rows = await this.stores.controlDb.query<{ id: string; run_id: string }>(
      `select id, run_id from ${SCHEMA}.waitpoints where run_id = any($1::text[]) and kind = 'approval' and status = 'waiting'`,
      [runIds],
    );
    return rows.rows.map((r) => ({ token: r.id, runId: r.run_id }));
  }

  /** Complete an approval over the API (POST /api/v1/waitpoints/{token}/complete). */
  async completeApproval(baseUrl: string, token: string, payload: unknown): Promise<number> {
    const res = await fetch(`${baseUrl}/api/v1/waitpoints/${token}/complete`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await this.key()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ payload }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  /** How many of these runs have not ended (or -1 while the database does not answer). */
  async unfinished(runIds: string[]): Promise<number> {
    const rows = await this.stores.controlDb
      .query<{ n: number }>(
        `select count(*)::int as n from ${SCHEMA}.runs where id = any($1::text[]) and status <> all($2::text[])`,
        [runIds, TERMINAL_RUN_STATUSES],
      )
      .catch(() => ({ rows: [{ n: -1 }] }));
    return rows.rows[0]!.n;
  }

  /** Wait until every run ended; throws naming how many did not within `timeoutMs`. */
  async waitForEnd(runIds: string[], timeoutMs: number, tick?: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = await this.unfinished(runIds);
      if (n === 0) return;
      if (Date.now() > deadline)
        throw new Error(`${n} of ${runIds.length} runs did not end within ${timeoutMs} ms`);
      await tick?.();
      await sleep(200);
    }
  }

  async check(runs: RunExpectation[]): Promise<LedgerReport> {
    const result = await checkLedger({
      weft: this.stores.controlDb,
      schema: SCHEMA,
      ledger: this.ledger,
      runs,
      pidOf: (id) => this.pids.get(id) ?? pidOfWorkerId(id),
    });
    if (result.violations.length > 0) {
      const runIds = [...new Set(result.violations.map((v) => v.split(/[/:]/)[0]!))].slice(0, 3);
      console.error(
        `worker log lines of ${runIds.join(', ')}:\n${this.logLines(runIds).join('\n')}`,
      );
    }
    return result;
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.workers, ...this.servers].map((p) => p.stop(2_000)));
    await this.engine.stop().catch(() => {});
    await this.stores.close().catch(() => {});
    await this.ledger.end().catch(() => {});
    await this.dropLedger().catch(() => {});
    await this.cluster.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One line of figures per scenario (the soak script collects them from stdout). */
export function report(
  scenario: string,
  seed: number,
  extra: Record<string, unknown>,
  r: LedgerReport,
): void {
  console.log(
    `[chaos-figures] ${JSON.stringify({ scenario, seed, date: new Date().toISOString(), runs: r.runs, lost: r.lost, duplicated: r.duplicated, ledgerStarts: r.ledgerStarts, attempts: r.attempts, outcomes: r.outcomes, ...extra })}`,
  );
  if (r.violations.length > 0)
    console.error(`[chaos ${scenario}] violations:\n${r.violations.slice(0, 40).join('\n')}`);
}
