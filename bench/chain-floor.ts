/**
 * Where a chained step's time goes (issue 8), by layers that can be subtracted: the same chained
 * step measured several ways in one database, repetitions interleaved (the order rotates).
 *
 * - `weft`: the engine runs a fresh --steps chain (embedded worker, as in the main bench's chain);
 * - `driver`: a minimal node-pg loop sends the statement the engine sends for a chained step
 *   (the chained commit, store/runs/chain-commit.ts) on a chain claimed up front. No engine code:
 *   the difference to `weft` is what the engine's own code adds per step;
 * - `pgbench`: the same statement from C (`pgbench -M prepared`, each reply's next step passed to
 *   the next call with `\gset`), when a pgbench binary is found. No Node: the difference to
 *   `driver` is what node-pg adds;
 * - `driver-executor`: the `driver` loop sent through Weft's executor (its `pg` pool and named
 *   statements, store/pg-executor.ts) instead of one `pg` client: the difference to `driver` is
 *   what the pool adds, the difference of `weft` to it what the engine's own code adds;
 * - `driver-fn` / `pgbench-fn`: the same with the complete_step call (its chain fast path), which
 *   the engine sent for every chained step before session 12 and still sends for the commits the
 *   chained statement leaves to it (a state patch, a successor whose row disagrees with the plan);
 * - `bare` / `bare-pgbench`: the main bench's bare commit (`insert into commits (v) values ($1)`,
 *   one per transaction) from node-pg and from pgbench;
 * - with `--parts`, `pgbench-without-<part>`: the chained statement from C with one part taken out
 *   (WITHOUT_PARTS below), to see what each part costs. These change what the statement answers
 *   (a null input or state, a constant hash) or writes (no output row), so they measure cost only;
 *   each is checked to change the statement's text, and its chains to complete.
 *
 * Each floor run is checked afterwards: every one of its steps succeeded (a fenced call would make
 * a loop look fast). Prints one JSON line per sample, then the medians and the ratios between the
 * layers. PostgreSQL only (WEFT_BENCH_PG_URL).
 *
 *   node --import tsx bench/chain-floor.ts [--steps 1000] [--reps 5] [--parts]
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { mintRunScopedId } from '../src/core/ids.js';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import type { ClaimedStep } from '../src/store/rows.js';
import { openWeftDatabase } from './lib/weft-database.js';
import { completeStepSql } from '../src/store/runs/queue.js';
import { completeChainedStepSql } from '../src/store/runs/chain-commit.js';
import { chainWorkflow } from './lib/chain-workflow.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '1000' },
    reps: { type: 'string', default: '5' },
    parts: { type: 'boolean', default: false },
  },
});
const STEPS = Number(values.steps);
const REPS = Number(values.reps);
const LEASE_MS = 3_600_000;

const pgbench = [
  process.env.PGBENCH,
  ...(existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort() : []).map(
    (v) => `/usr/lib/postgresql/${v}/bin/pgbench`,
  ),
]
  .filter((p): p is string => !!p && existsSync(p))
  .at(-1);
/** Parts of the chained statement that `--parts` takes out, one at a time (S: the schema). */
const WITHOUT_PARTS: Record<string, (sql: string, S: string) => string> = {
  // the claimed row's input, read by the claim rule's own join (the statement answers outp's body)
  'input-join': (q, S) =>
    q
      .replace(`left join ${S}.dataclips claim_d on claim_d.id = claim_c.input_dataclip_id`, '')
      .replace('claim_d.body as input', 'null::jsonb as input'),
  // the output's hash, computed by the server
  md5: (q) => q.replace('md5($4::jsonb::text)', `'h'`),
  // the run's row: version, state, dataclip setting, watched test
  'run-join': (q, S) =>
    q
      .replace(`join ${S}.runs claim_r on claim_r.id = claim_c.run_id`, '')
      .replace('claim_r.version_id::text', 'null::text')
      .replace('claim_r.state as state', 'null::jsonb as state')
      .replace('claim_r.save_dataclips as save_dataclips', 'true as save_dataclips')
      .replace(
        `where claim_r.watched_until is null or claim_r.watched_until < now()
      or ${S}.notify_watched(claim_c.run_id)`,
        '',
      ),
  // the output row itself
  'output-row': (q) =>
    q.replace(
      /, outp as \(\n {2}insert into [\s\S]*?returning body, body_hash\n\)/,
      `, outp as (select 'null'::jsonb as body, 'h' as body_hash from fenced)`,
    ),
};
const variants = [
  'weft',
  'driver',
  'driver-executor',
  'driver-fn',
  ...(pgbench ? ['pgbench', 'pgbench-fn'] : []),
  'bare',
  ...(pgbench ? ['bare-pgbench'] : []),
  ...(pgbench && values.parts ? Object.keys(WITHOUT_PARTS).map((p) => `pgbench-without-${p}`) : []),
];

const wf = chainWorkflow('chain', STEPS);

const { db, executor, stores, environmentId } = await openWeftDatabase('chain_floor');
const dir = mkdtempSync(join(tmpdir(), 'weft-chain-floor-'));
const client = new pg.Client({ connectionString: db.url, application_name: 'weft' });
try {
  const schema = stores.schemas.locations[0]!;
  const tag = schema.replace(/^weft_loc_/, '');
  // The floors' chains: triggered and claimed up front (worker `floor`, an hour's lease), before
  // the engine's worker starts, so it never takes them.
  const setup = await Engine.start({
    stores,
    environmentId,
    workflows: [wf],
    worker: false,
    logger: silentLogger(),
  });
  const floorRuns =
    variants.filter((v) => v.startsWith('driver') || v.startsWith('pgbench-') || v === 'pgbench')
      .length *
    (REPS + 1);
  for (let i = 0; i < floorRuns; i++) await setup.trigger('chain', null);
  const claimed: ClaimedStep[] = await stores.runs.claimSteps(
    'floor',
    [environmentId],
    ['chain'],
    floorRuns,
    LEASE_MS,
  );
  if (claimed.length !== floorRuns)
    throw new Error(`claimed ${claimed.length} of ${floorRuns} floor chains`);
  await setup.stop();
  const engine = await Engine.start({
    stores,
    environmentId,
    workflows: [wf],
    logger: silentLogger(),
  });
  await engine.waitForRun((await engine.trigger('chain', null)).run.id, { timeoutMs: 600_000 }); // warm-up

  await client.connect();
  await client.query(
    'create table commits (id bigint generated always as identity primary key, v integer not null)',
  );
  const statement = completeStepSql(schema);
  const chained = completeChainedStepSql(schema);
  for (const [part, without] of Object.entries(WITHOUT_PARTS))
    if (without(chained, schema) === chained)
      throw new Error(`--parts: taking out ${part} changed nothing in the chained statement`);

  /** Every step of a floor chain succeeded, or the loop measured something else. */
  const checkChain = async (runId: string) => {
    const { rows } = await client.query<{ n: number }>(
      `select count(*)::int as n from ${schema}.step_runs where run_id = $1 and status = 'succeeded'`,
      [runId],
    );
    if (rows[0]!.n !== STEPS)
      throw new Error(`floor chain ${runId}: ${rows[0]!.n} of ${STEPS} steps succeeded`);
  };

  const runPgbench = async (script: string, transactions: number, vars: Record<string, string>) => {
    const file = join(dir, 'script.sql');
    writeFileSync(file, script);
    const url = new URL(db.url);
    const args = [
      '-h',
      url.hostname,
      '-p',
      url.port || '5432',
      '-U',
      decodeURIComponent(url.username),
      '-n',
      '-M',
      'prepared',
      '-t',
      String(transactions),
      '-f',
      file,
      ...Object.entries(vars).flatMap(([k, v]) => ['-D', `${k}=${v}`]),
      url.pathname.slice(1),
    ];
    const { stdout } = await promisify(execFile)(pgbench!, args);
    const ms = /latency average = ([0-9.]+) ms/.exec(stdout)?.[1];
    if (!ms || !/number of failed transactions: 0 /.test(stdout))
      throw new Error(`pgbench: ${stdout}`);
    return Number(ms);
  };

  /** The last step of a floor chain has no successor: complete_step commits it, as the engine. */
  const completeLast = async (runId: string) => {
    const { rows } = await client.query<{ id: string; attempt: number }>(
      `select id, attempt_count as attempt from ${schema}.step_runs where run_id = $1 and status = 'running'`,
      [runId],
    );
    if (rows.length !== 1)
      throw new Error(`floor chain ${runId} has ${rows.length} running steps, not its last one`);
    const done = await client.query<{ r: { status: string } }>(statement, [
      rows[0]!.id,
      rows[0]!.attempt,
      'floor',
      'null',
      mintRunScopedId('dc', tag),
      null,
      null,
      [],
      [],
      true,
      LEASE_MS,
    ]);
    if (done.rows[0]!.r.status !== 'committed')
      throw new Error(`floor chain ${runId}: its last step was ${done.rows[0]!.r.status}`);
  };

  type Next = { step_run_id: string; attempt: number; step_key: string };
  /** One chained step from node-pg, by the chained statement or the complete_step call. */
  const sendStep = async (
    kind: 'chained' | 'fn' | 'executor',
    runId: string,
    sr: string,
    attempt: number,
    key: string,
  ): Promise<Next> => {
    const next = `s${Number(key.slice(1)) + 1}`;
    const outputId = mintRunScopedId('dc', tag);
    if (kind !== 'fn') {
      const values = [sr, attempt, 'floor', 'null', outputId, runId, next, key, LEASE_MS];
      const { rows } =
        kind === 'executor'
          ? await executor.query<Next & { fenced: number }>(chained, values)
          : await client.query<Next & { fenced: number }>({
              name: 'floor_chained_step',
              text: chained,
              values,
            });
      if (rows[0]!.fenced !== 1 || !rows[0]!.step_run_id)
        throw new Error(`driver: step ${key} of ${runId} was not committed with its successor`);
      return rows[0]!;
    }
    const { rows } = await client.query<{ r: { status: string; next?: Next } }>({
      name: 'floor_complete_step',
      text: statement,
      values: [sr, attempt, 'floor', 'null', outputId, null, null, [next], [], true, LEASE_MS],
    });
    const r = rows[0]!.r;
    if (r.status !== 'committed' || !r.next)
      throw new Error(`driver-fn: step ${key} of ${runId} was ${r.status}`);
    return r.next;
  };

  const driverLoop = async (kind: 'chained' | 'fn' | 'executor') => {
    const first = claimed.shift()!;
    let step: Next = {
      step_run_id: first.stepRunId,
      attempt: first.attempt,
      step_key: first.stepKey,
    };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 1; i < STEPS; i++)
      step = await sendStep(kind, first.runId, step.step_run_id, step.attempt, step.step_key);
    await completeLast(first.runId);
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    await checkChain(first.runId);
    return {
      wallMsPerStep: wall / STEPS,
      clientCpuMsPerStep: (cpu.user + cpu.system) / 1000 / STEPS,
    };
  };

  /** The same chain from C: STEPS - 1 chained steps by pgbench (timed), the last one after. */
  const pgbenchChain = async (kind: 'chained' | 'fn', text = chained) => {
    const first = claimed.shift()!;
    const nextKey = `('s' || (substr(:step_key, 2)::int + 1))`;
    // The output dataclip's id, made by pgbench as the engine makes it in JavaScript. Until
    // 2026-11-30 these scripts called mint_id() (PL/pgSQL, 26 loop turns) for it, which the
    // engine never does: about 13 % of the backend's CPU in a perf profile of this layer.
    const outputId = `('dc_floor' || :dcid)::`;
    const script =
      `\\set dcid random(1000000000000000000, 9000000000000000000)\n` +
      (kind === 'chained'
        ? // the engine's statement, its parameters as pgbench variables; it answers step_run_id,
          // attempt and step_key, which \gset makes the next call's variables
          `${text
            .replaceAll('$1::', ':step_run_id::')
            .replaceAll('$2::', '(:attempt)::')
            .replaceAll('$3::', `'floor'::`)
            .replaceAll('$4::', `'null'::`)
            .replaceAll('$5::', outputId)
            .replaceAll('$6::', `'${first.runId}'::`)
            .replaceAll('$7::', `${nextKey}::`)
            .replaceAll('$8::', ':step_key::')
            .replaceAll('$9::', `${LEASE_MS}::`)}\n\\gset\n`
        : `select r->'next'->>'step_run_id' as step_run_id, r->'next'->>'attempt' as attempt, r->'next'->>'step_key' as step_key
  from (select ${schema}.complete_step(:step_run_id, (:attempt)::int, 'floor', 'null', ${outputId}text, null, null,
        array[${nextKey}], '{}', true, ${LEASE_MS}) as r) x
\\gset
`);
    const ms = await runPgbench(script, STEPS - 1, {
      step_run_id: first.stepRunId,
      attempt: String(first.attempt),
      step_key: first.stepKey,
    });
    await completeLast(first.runId);
    await checkChain(first.runId);
    return { wallMsPerStep: ms };
  };

  const measure: Record<
    string,
    () => Promise<{ wallMsPerStep: number; clientCpuMsPerStep?: number }>
  > = {
    weft: async () => {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const done = await engine.waitForRun((await engine.trigger('chain', null)).run.id, {
        timeoutMs: 600_000,
      });
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      if (done.status !== 'succeeded') throw new Error(`the chain ended ${done.status}`);
      return {
        wallMsPerStep: wall / STEPS,
        clientCpuMsPerStep: (cpu.user + cpu.system) / 1000 / STEPS,
      };
    },
    driver: () => driverLoop('chained'),
    'driver-executor': () => driverLoop('executor'),
    'driver-fn': () => driverLoop('fn'),
    pgbench: () => pgbenchChain('chained'),
    'pgbench-fn': () => pgbenchChain('fn'),
    ...Object.fromEntries(
      Object.entries(WITHOUT_PARTS).map(([part, without]) => [
        `pgbench-without-${part}`,
        () => pgbenchChain('chained', without(chained, schema)),
      ]),
    ),
    bare: async () => {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < STEPS; i++)
        await client.query({
          name: 'floor_bare',
          text: 'insert into commits (v) values ($1)',
          values: [i],
        });
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      return {
        wallMsPerStep: wall / STEPS,
        clientCpuMsPerStep: (cpu.user + cpu.system) / 1000 / STEPS,
      };
    },
    'bare-pgbench': async () => ({
      wallMsPerStep: await runPgbench('insert into commits (v) values (1);\n', STEPS, {}),
    }),
  };

  const samples = new Map<string, Array<{ wallMsPerStep: number; clientCpuMsPerStep?: number }>>(
    variants.map((v) => [v, []]),
  );
  for (let rep = 0; rep <= REPS; rep++) {
    // rotate the order; the first repetition warms plans and connections and is not kept
    for (const v of variants.map((_, i) => variants[(i + rep) % variants.length]!)) {
      const s = await measure[v]!();
      if (rep === 0) continue;
      samples.get(v)!.push(s);
      console.log(JSON.stringify({ type: 'sample', variant: v, rep, ...round(s) }));
    }
  }
  await engine.stop();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const med = Object.fromEntries(
    variants.map((v) => {
      const xs = samples.get(v)!;
      const cpu = xs.map((x) => x.clientCpuMsPerStep).filter((x): x is number => x !== undefined);
      return [
        v,
        {
          wallMsPerStep: median(xs.map((x) => x.wallMsPerStep)),
          ...(cpu.length ? { clientCpuMsPerStep: median(cpu) } : {}),
        },
      ];
    }),
  );
  for (const v of variants)
    console.log(
      JSON.stringify({
        type: 'median',
        variant: v,
        steps: STEPS,
        reps: REPS,
        ...round(med[v]!),
        loadavg: loadavg(),
      }),
    );
  const ratio = (a: string, b: string, meaning: string) =>
    med[a] &&
    med[b] &&
    console.log(
      JSON.stringify({
        type: 'ratio',
        of: a,
        to: b,
        ratio: +(med[a].wallMsPerStep / med[b].wallMsPerStep).toFixed(2),
        meaning,
      }),
    );
  ratio(
    'weft',
    'driver',
    "the engine's whole step over the same statement sent by a bare node-pg loop",
  );
  ratio('driver', 'pgbench', 'node-pg over C for that statement');
  ratio(
    'driver-executor',
    'driver',
    "Weft's executor (pg pool) over one pg client, same statement",
  );
  ratio(
    'weft',
    'driver-executor',
    "the engine's step over the same statement through its executor",
  );
  ratio('pgbench', 'pgbench-fn', 'the chained statement over the complete_step call, both from C');
  ratio(
    'driver',
    'driver-fn',
    'the chained statement over the complete_step call, both from node-pg',
  );
  ratio('pgbench', 'bare-pgbench', 'the statement in bare commits, both from C');
  for (const part of Object.keys(WITHOUT_PARTS))
    ratio(
      `pgbench-without-${part}`,
      'pgbench',
      `the statement without ${part} over the whole one, C`,
    );
  ratio('weft', 'bare', "issue 8's measure: a chained step in bare commits, both from node-pg");
} finally {
  await client.end().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  await executor.close();
  await db.drop();
}

function round<T extends Record<string, number | undefined>>(o: T): T {
  return Object.fromEntries(
    Object.entries(o).map(([k, v]) => [k, v === undefined ? v : +v.toFixed(4)]),
  ) as T;
}
