/**
 * The side-effect ledger: step code of the fault suites appends (run, step key, attempt, pid) to a
 * table in a separate PostgreSQL database — outside Weft's tables and, in the restart scenarios,
 * on another server than the one being restarted — and awaits the insert before going on, so a
 * start is recorded even when the process dies right after. `checkLedger` then compares the ledger
 * with Weft's rows and with the reference interpreter (spec.ts), run by run.
 *
 * What the checker proves, per run (each violation is reported with the run and step key):
 * 1. **reached its end**: the run's status is the interpreter's (`succeeded` / `failed`), and no
 *    step run of it is left open, no attempt of any step (control nodes included) left `running` —
 *    a failed run too (its unfinished step runs and their attempts are canceled with it).
 * 2. **no output committed twice**: per code step run at most one `output` dataclip names it
 *    (`by.step`), exactly one if it succeeded, and it is its succeeded attempt's (`by.attempt`).
 * 3. **none invented**: every ledger entry has a persisted attempt row with that number, written by
 *    that process (the worker id carries the pid); no attempt number starts twice.
 * 4. **none lost**: every `succeeded` or `failed` attempt of a code step has its ledger entry. An
 *    attempt row without one is allowed only when the code never started: status `lost` (the worker
 *    died or was cut off between the claim and the code's first statement, reaped with `lease_lost`
 *    or released with `database_unavailable`) or `canceled`.
 * 5. **maxAttempts never exceeded**: ledger starts per step run ≤ the step run's budget
 *    (`max_attempts`, grown by one per uncharged release), and charged attempts (every attempt but
 *    `database_unavailable` releases) ≤ the definition's `maxAttempts`.
 * 6. **same result as a fault-free run**: final state and run state equal the interpreter's.
 */
import pg from 'pg';
import type { Executor } from '../../src/store/executor.js';
import type { StepContext } from '../../src/index.js';
import { comparable, interpret, type WorkflowSpec } from './spec.js';

export const LEDGER_ENV = 'CHAOS_LEDGER_URL';

export async function createLedgerTable(db: Executor | pg.Pool): Promise<void> {
  const sql = `create table if not exists public.ledger (
    id bigint generated always as identity primary key,
    run_id text not null,
    step_key text not null,
    attempt integer not null,
    pid integer not null,
    at timestamptz not null default clock_timestamp()
  )`;
  if ('exec' in db) await db.exec(sql);
  else await db.query(sql);
}

/** An appender over its own small pool (it survives a cut connection: the pool replaces it). */
export function ledgerAppender(url: string): {
  append: (ctx: StepContext) => Promise<void>;
  close: () => Promise<void>;
} {
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'chaos-ledger' });
  pool.on('error', () => {});
  return {
    append: async (ctx) => {
      await pool.query(
        'insert into public.ledger (run_id, step_key, attempt, pid) values ($1, $2, $3, $4)',
        [ctx.runId, ctx.stepKey, ctx.attempt, process.pid],
      );
    },
    close: () => pool.end(),
  };
}

export interface LedgerRow {
  run_id: string;
  step_key: string;
  attempt: number;
  pid: number;
}

interface AttemptRow {
  run_id: string;
  step_key: string;
  kind: string;
  number: number;
  status: string;
  worker_id: string;
  error_code: string | null;
}

interface StepRunRow {
  run_id: string;
  step_key: string;
  step_id: string;
  kind: string;
  status: string;
  max_attempts: number;
}

export interface RunExpectation {
  runId: string;
  spec: WorkflowSpec;
  input: unknown;
  approvals?: Record<string, unknown>;
}

/** The pid in a default worker id (`<host>-<pid>-<random>`), if it has that shape. */
export function pidOfWorkerId(workerId: string): number | undefined {
  const m = /-(\d+)-[a-z0-9]+$/i.exec(workerId);
  return m ? Number(m[1]) : undefined;
}

export interface LedgerReport {
  runs: number;
  ledgerStarts: number;
  attempts: number;
  /** attempts by status (and error code for lost ones) */
  outcomes: Record<string, number>;
  lost: number;
  duplicated: number;
  violations: string[];
}

const ENDED = new Set(['succeeded', 'failed', 'canceled']);
const OPEN = new Set(['pending', 'ready', 'running', 'waiting']);

/** Step runs whose code appends to the ledger (routers and control nodes do not). */
const CODE_KINDS = new Set(['step']);

/**
 * Check every run against the ledger and the interpreter. Never throws on a violation: returns
 * them all (the caller asserts `violations` is empty and prints the rest of the report).
 * `pidOf(workerId)` maps an attempt's worker id to its process id, when known (else unchecked).
 */
export async function checkLedger(options: {
  weft: Executor;
  schema: string;
  ledger: Executor | pg.Pool;
  runs: RunExpectation[];
  pidOf?: (workerId: string) => number | undefined;
}): Promise<LedgerReport> {
  const { weft, schema, runs } = options;
  const ids = runs.map((r) => r.runId);
  const violations: string[] = [];
  const flag = (msg: string) => {
    if (violations.length < 200) violations.push(msg);
  };
  const q = <T>(db: Executor | pg.Pool, sql: string, params: unknown[]) =>
    (db as Executor).query(sql, params) as unknown as Promise<{ rows: T[] }>;

  const runRows = (
    await q<{ id: string; status: string; state: unknown; final: unknown }>(
      weft,
      `select r.id, r.status, r.state, d.body as final
         from ${schema}.runs r left join ${schema}.dataclips d on d.id = r.final_dataclip_id
        where r.id = any($1::text[])`,
      [ids],
    )
  ).rows;
  const stepRuns = (
    await q<StepRunRow>(
      weft,
      `select run_id, step_key, step_id, kind, status, max_attempts from ${schema}.step_runs
        where run_id = any($1::text[])`,
      [ids],
    )
  ).rows;
  const attempts = (
    await q<AttemptRow>(
      weft,
      `select a.run_id, s.step_key, s.kind, a.number, a.status, a.worker_id, a.error->>'code' as error_code
         from ${schema}.attempts a join ${schema}.step_runs s on s.id = a.step_run_id
        where a.run_id = any($1::text[])`,
      [ids],
    )
  ).rows;
  const outputs = (
    await q<{ run: string; step: string; attempt: number }>(
      weft,
      `select body->'by'->>'run' as run, body->'by'->>'step' as step, (body->'by'->>'attempt')::int as attempt
         from ${schema}.dataclips d
        where run_id = any($1::text[]) and kind = 'output' and body ? 'by'
          -- a sleep or router passes its input on as its own output (a copy): not a second commit
          and not exists (select 1 from ${schema}.step_runs s
                           where s.run_id = d.run_id and s.output_dataclip_id = d.id and s.kind <> 'step')`,
      [ids],
    )
  ).rows;
  const ledger = (
    await q<LedgerRow>(
      options.ledger,
      'select run_id, step_key, attempt, pid from public.ledger where run_id = any($1::text[]) order by id',
      [ids],
    )
  ).rows;

  const key = (run: string, step: string) => `${run}/${step}`;
  const group = <T>(rows: T[], k: (r: T) => string) => {
    const m = new Map<string, T[]>();
    for (const r of rows) m.set(k(r), [...(m.get(k(r)) ?? []), r]);
    return m;
  };
  const attemptsBy = group(attempts, (a) => key(a.run_id, a.step_key));
  const ledgerBy = group(ledger, (l) => key(l.run_id, l.step_key));
  const outputsBy = group(outputs, (o) => key(o.run, o.step));
  const stepRunsBy = group(stepRuns, (s) => s.run_id);
  const runById = new Map(runRows.map((r) => [r.id, r]));
  let duplicated = 0;
  let lost = 0;

  for (const expectation of runs) {
    const { runId, spec } = expectation;
    const run = runById.get(runId);
    if (!run) {
      flag(`${runId}: no run row`);
      lost++;
      continue;
    }
    const want = interpret(spec, expectation.input, expectation.approvals);
    // 1. reached its end
    if (run.status !== want.status) {
      flag(`${runId}: status ${run.status}, the reference run ends ${want.status}`);
      lost++;
    }
    const maxOf = new Map<string, number>();
    for (const n of spec.nodes)
      if ('maxAttempts' in n) maxOf.set(n.kind === 'step' ? n.id : `${n.id}_b`, n.maxAttempts);
    const ended = ENDED.has(run.status);
    for (const sr of stepRunsBy.get(runId) ?? []) {
      // An ended run (succeeded, failed, canceled) has no open step run and no open attempt, of
      // any kind: a failed run's unfinished steps were canceled with it, and their attempts too.
      if (ended && OPEN.has(sr.status)) flag(`${runId}/${sr.step_key}: left ${sr.status}`);
      if (ended)
        for (const a of attemptsBy.get(key(runId, sr.step_key)) ?? [])
          if (a.status === 'running')
            flag(
              `${runId}/${sr.step_key}: attempt ${a.number} still running in a ${run.status} run`,
            );
      if (!CODE_KINDS.has(sr.kind)) continue;
      const k = key(runId, sr.step_key);
      const tries = attemptsBy.get(k) ?? [];
      const starts = ledgerBy.get(k) ?? [];
      const outs = outputsBy.get(k) ?? [];
      // 2. no output committed twice
      const succeeded = tries.filter((a) => a.status === 'succeeded');
      if (succeeded.length > 1 || outs.length > 1) {
        duplicated++;
        flag(`${k}: ${succeeded.length} succeeded attempts, ${outs.length} output dataclips`);
      }
      if (sr.status === 'succeeded' && (succeeded.length !== 1 || outs.length !== 1))
        flag(
          `${k}: succeeded with ${succeeded.length} succeeded attempts and ${outs.length} outputs`,
        );
      if (succeeded[0] && outs[0] && outs[0].attempt !== succeeded[0].number)
        flag(
          `${k}: the output is attempt ${outs[0].attempt}'s, the succeeded attempt is ${succeeded[0].number}`,
        );
      // 3. none invented: each start has its attempt row, by that process; no number starts twice
      const seen = new Set<number>();
      for (const s of starts) {
        if (seen.has(s.attempt)) {
          duplicated++;
          flag(`${k}: attempt ${s.attempt} started twice`);
        }
        seen.add(s.attempt);
        const row = tries.find((a) => a.number === s.attempt);
        if (!row)
          flag(`${k}: the ledger has attempt ${s.attempt} (pid ${s.pid}), no attempt row has it`);
        else {
          const pid = options.pidOf?.(row.worker_id);
          if (pid !== undefined && pid !== s.pid)
            flag(
              `${k}: attempt ${s.attempt} ran in pid ${s.pid}, its row names ${row.worker_id} (pid ${pid})`,
            );
        }
      }
      // 4. none lost: a finished attempt ran its code
      for (const a of tries) {
        if ((a.status === 'succeeded' || a.status === 'failed') && !seen.has(a.number)) {
          lost++;
          flag(
            `${k}: attempt ${a.number} is ${a.status} but its code never started (no ledger entry)`,
          );
        }
      }
      // 5. maxAttempts
      if (seen.size > sr.max_attempts) flag(`${k}: ${seen.size} starts, budget ${sr.max_attempts}`);
      const charged = tries.filter((a) => a.error_code !== 'database_unavailable').length;
      const limit = maxOf.get(sr.step_id);
      if (limit !== undefined && charged > limit)
        flag(`${k}: ${charged} charged attempts, maxAttempts ${limit}`);
    }
    // 6. same result as the fault-free run
    if (want.status === 'succeeded' && run.status === 'succeeded') {
      const final = JSON.stringify(comparable(run.final));
      if (final !== JSON.stringify(comparable(want.final)))
        flag(
          `${runId}: final state ${final}, the reference run's is ${JSON.stringify(want.final)}`,
        );
      const state = canonical(run.state);
      if (state !== canonical(want.state))
        flag(`${runId}: run state ${state}, the reference run's is ${canonical(want.state)}`);
    }
  }
  const outcomes: Record<string, number> = {};
  for (const a of attempts) {
    const k = a.error_code ? `${a.status}:${a.error_code}` : a.status;
    outcomes[k] = (outcomes[k] ?? 0) + 1;
  }
  return {
    runs: runs.length,
    ledgerStarts: ledger.length,
    attempts: attempts.length,
    outcomes,
    lost,
    duplicated,
    violations,
  };
}

function canonical(value: unknown): string {
  if (!value || typeof value !== 'object') return JSON.stringify(value ?? {});
  const o = value as Record<string, unknown>;
  return JSON.stringify(
    Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, o[k]]),
    ),
  );
}
