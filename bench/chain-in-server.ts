/**
 * A chained step's server time, measured inside PostgreSQL (issue 8): no client, no commit, no
 * fsync. One run of a --steps chain is claimed at its first step; then one DO block calls
 * `complete_step` for each step in turn (with the chain fast path: the commit claims the
 * successor) and reports the µs per step from clock_timestamp. Each repetition runs in a
 * transaction that is rolled back, so every repetition and every variant runs on the same rows.
 *
 *   node --import tsx bench/chain-in-server.ts [--steps 2000] [--reps 5] [--variant file.sql ...]
 *
 * A variant is SQL run inside the repetition's transaction before the loop (e.g. a `create or
 * replace function {{schema}}.…` to try), with `{{schema}}` replaced by the location schema. The
 * functions as installed are measured too, repetitions interleaved with the variants'. Prints one
 * JSON line per repetition and one with the medians. PostgreSQL only (WEFT_BENCH_PG_URL).
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import { openWeftDatabase } from './lib/weft-database.js';
import { chainWorkflow } from './lib/chain-workflow.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '2000' },
    reps: { type: 'string', default: '5' },
    variant: { type: 'string', multiple: true, default: [] },
  },
});
const STEPS = Number(values.steps);
const REPS = Number(values.reps);
const variants = [
  { name: 'installed', sql: '' },
  ...values.variant.map((file) => ({ name: file, sql: readFileSync(file, 'utf8') })),
];

const wf = chainWorkflow('chain', STEPS);

const { db, executor, stores, environmentId } = await openWeftDatabase('in_server', {
  poolSize: 2,
});
const client = new pg.Client({ connectionString: db.url });
try {
  const engine = await Engine.start({
    stores,
    environmentId,
    workflows: [wf],
    worker: false,
    logger: silentLogger(),
  });
  const { run } = await engine.trigger('chain', null);
  const [first] = await stores.runs.claimSteps('bench', [environmentId], ['chain'], 1, 3_600_000);
  if (!first || first.runId !== run.id) throw new Error('the chain run was not claimed');
  await engine.stop();
  const schema = stores.schemas.locations[0]!;

  await client.connect();
  let notice = '';
  client.on('notice', (n) => (notice = n.message ?? ''));
  const loop = `do $$
declare
  v_sr text := '${first.stepRunId}';
  v_attempt integer := ${first.attempt};
  r jsonb;
  ids text[] := array(select ${schema}.mint_id('dc') from generate_series(1, ${STEPS}));
  t0 timestamptz;
begin
  t0 := clock_timestamp();
  for i in 1..${STEPS - 1} loop
    r := ${schema}.complete_step(v_sr, v_attempt, 'bench', 'null', ids[i], null, null,
                                 array['s' || i], '{}', true, 3600000);
    if r->'next' is null or jsonb_typeof(r->'next') = 'null' then
      raise exception 'step % did not hand back its successor: %', i, r;
    end if;
    v_sr := r->'next'->>'step_run_id';
    v_attempt := (r->'next'->>'attempt')::integer;
  end loop;
  raise notice '%', extract(epoch from clock_timestamp() - t0) * 1e6 / ${STEPS - 1};
end $$`;

  const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let rep = 0; rep < REPS + 1; rep++) {
    // rotate the order each repetition; the first repetition warms the plans and is not kept
    const order = variants.map((_, i) => variants[(i + rep) % variants.length]!);
    for (const v of order) {
      await client.query('begin');
      try {
        if (v.sql) await client.query(v.sql.replaceAll('{{schema}}', schema));
        await client.query(loop);
      } finally {
        await client.query('rollback');
      }
      const us = Number(notice);
      if (rep > 0) {
        samples.get(v.name)!.push(us);
        console.log(JSON.stringify({ type: 'sample', variant: v.name, rep, usPerStep: us }));
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name, xs] of samples)
    console.log(
      JSON.stringify({
        type: 'median',
        variant: name,
        steps: STEPS,
        usPerStep: Math.round(median(xs) * 10) / 10,
        samples: xs.map((x) => Math.round(x * 10) / 10),
        loadavg: loadavg(),
      }),
    );
} finally {
  await client.end().catch(() => {});
  await executor.close();
  await db.drop();
}
