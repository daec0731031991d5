/**
 * `weft replicate` killed with SIGKILL mid-stream (runs being created and finished in both
 * locations all along), then started again: every run is in ClickHouse with PostgreSQL's final
 * status, none missing, none counted twice in query results (FINAL). Also `weft replicate status`
 * and the lag gauge on the replicator's /metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { openAnalyticsFixture, type AnalyticsFixture } from './support/analytics-fixture.js';
import { CLICKHOUSE_ABSENT, clickhouseBinary } from './support/throwaway-clickhouse.js';
import { REPO_ROOT, runCli, startCli, type CliProcess } from './support/cli-process.js';

const present = clickhouseBinary() !== undefined;
if (!present) console.warn(CLICKHOUSE_ABSENT);

const wf = defineWorkflow<{ n: number }>('wf')
  .step('a', async (input) => {
    await new Promise((r) => setTimeout(r, 5));
    return input;
  })
  .step('b', { after: 'a' }, (input) => input);

describe.skipIf(!present)('weft replicate killed mid-stream', () => {
  let f: AnalyticsFixture;
  let env: Record<string, string>;
  const children: CliProcess[] = [];

  beforeAll(async () => {
    f = await openAnalyticsFixture([wf]);
    env = {
      DATABASE_URL: f.url,
      WEFT_LOCATIONS: 'a0,b1',
      WEFT_CLICKHOUSE_URL: f.clickhouseServer.url,
      WEFT_LOG_LEVEL: 'info',
    };
  }, 120_000);
  afterAll(async () => {
    for (const c of children) await c.stop(2_000).catch(() => {});
    await f?.close();
  });

  const chCount = async () =>
    Number(
      (
        await f.clickhouse.query<{ n: string }>(
          `SELECT toString(count()) AS n FROM weft.runs FINAL WHERE deleted = 0`,
        )
      )[0]!.n,
    );

  it('resumes after kill -9: none missing, none doubled', async () => {
    const first = startCli(['replicate', '--metrics-port', '0'], { cwd: REPO_ROOT, env });
    children.push(first);
    await first.waitFor('stdout', /analytics: replicating/, 60_000);

    // a stream of runs in both locations while the replicator is killed and restarted
    const ids: string[] = [];
    let producing = true;
    const producer = (async () => {
      for (let n = 0; producing && n < 400; n++) {
        ids.push((await f.engines[n % 2]!.trigger('wf', { n })).run.id);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const deadline = Date.now() + 60_000;
    while ((await chCount()) < 40) {
      if (Date.now() > deadline) throw new Error(`nothing replicated\n${first.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    first.child.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1_000));
    const second = startCli(['replicate'], { cwd: REPO_ROOT, env });
    children.push(second);
    await second.waitFor('stdout', /analytics: replicating/, 60_000);
    await new Promise((r) => setTimeout(r, 1_500));
    producing = false;
    await producer;
    for (const id of ids) await f.engines[0].waitForRun(id, { timeoutMs: 60_000 });

    const pg = await f.executor.query<{ id: string; status: string }>(
      `select id, status from weft_loc_a0.runs union all select id, status from weft_loc_b1.runs order by id`,
    );
    expect(pg.rows.length).toBe(ids.length);
    expect(new Set(pg.rows.map((r) => r.status))).toEqual(new Set(['succeeded']));
    const settle = Date.now() + 60_000;
    for (;;) {
      const ch = await f.clickhouse.query<{ id: string; status: string }>(
        `SELECT id, status FROM weft.runs FINAL WHERE deleted = 0 ORDER BY id`,
      );
      try {
        expect(ch).toEqual(pg.rows);
        break;
      } catch (error) {
        if (Date.now() > settle) throw error;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    // none doubled: one row per id in query results, and per step run too. A batch is written
    // one ClickHouse insert per table (insertChanges), so the last batch's step runs can land a
    // moment after its runs: settle on them as on the runs above
    for (;;) {
      const dup = await f.clickhouse.query<{ n: string; d: string }>(
        `SELECT toString(count()) AS n, toString(uniqExact(id)) AS d FROM weft.step_runs FINAL WHERE deleted = 0`,
      );
      try {
        expect(dup[0]!.n).toBe(dup[0]!.d);
        expect(Number(dup[0]!.n)).toBe(ids.length * 2);
        break;
      } catch (error) {
        if (Date.now() > settle) throw error;
        await new Promise((r) => setTimeout(r, 250));
      }
    }

    // status: the slot is streaming and caught up
    const status = await runCli(['replicate', 'status', '--json'], {
      cwd: REPO_ROOT,
      env,
      timeoutMs: 30_000,
    });
    expect(status.stderr + status.stdout).not.toMatch(/error/i);
    expect({ code: status.code, out: status.stdout, err: status.stderr }).toMatchObject({
      code: 0,
    });
    const [s] = JSON.parse(status.stdout) as Array<Record<string, unknown>>;
    expect(s).toMatchObject({
      locations: ['a0', 'b1'],
      slot: 'weft_analytics_weft_analytics',
      slotExists: true,
      slotActive: true,
    });
    expect((s!.rows as Record<string, number>).runs).toBe(ids.length);
    await second.stop(5_000);
  }, 240_000);

  it('weft server --replicate streams, and answers lists and metrics from ClickHouse', async () => {
    const proc = startCli(['server', '--replicate', '--port', '0'], { cwd: REPO_ROOT, env });
    children.push(proc);
    const [, url] = await proc.waitFor('stdout', /server listening on (http:\/\/[^ ]+) /, 60_000);
    await proc.waitFor('stdout', /analytics: replicating/, 60_000);
    const key = await f.stores[0].control.createApiKey(f.environmentId, 'server --replicate');
    const headers = { authorization: `Bearer ${key.token}` };
    // in a0: the server lists the locations the organization minted into (its flags say a0; the
    // fixture's b1 engine mints there by its own default, which the server does not know)
    const { run } = await f.engines[0].trigger('wf', { n: -1 });
    await f.engines[0].waitForRun(run.id, { timeoutMs: 30_000 });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const list = (await (
        await fetch(`${url}/api/v1/runs?status=succeeded&limit=1`, { headers })
      ).json()) as { data: Array<{ id: string; status: string }> };
      if (list.data[0]?.id === run.id) break;
      if (Date.now() > deadline) {
        (await import('node:fs')).writeFileSync(
          '/tmp/server-replicate.log',
          proc.stdout() + '\n---\n' + proc.stderr(),
        );
        throw new Error(
          `the run did not reach the list: ${JSON.stringify(list)}\n${proc.stderr()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const rate = (await (
      await fetch(`${url}/api/v1/metrics/failure-rate`, { headers })
    ).json()) as { source: string; data: Array<{ workflowId: string; failed: number }> };
    expect(rate.source).toBe('clickhouse');
    expect(rate.data).toMatchObject([{ workflowId: 'wf', failed: 0 }]);
    expect(await proc.stop(20_000)).toBe(0);
  }, 120_000);

  it('serves the lag gauges on --metrics-port', async () => {
    const proc = startCli(['replicate', '--metrics-port', '0'], { cwd: REPO_ROOT, env });
    children.push(proc);
    const [, url] = await proc.waitFor('stdout', /"url":"(http:[^"]+\/metrics)"/, 60_000);
    await proc.waitFor('stdout', /analytics: replicating/, 60_000);
    const text = await (await fetch(url!)).text();
    expect(text).toMatch(/weft_analytics_lag_bytes\{source="weft_analytics_weft_analytics"\} \d+/);
    expect(text).toMatch(/weft_analytics_lag_seconds\{source="weft_analytics_weft_analytics"\} /);
    expect(await proc.stop(20_000)).toBe(0);
  }, 120_000);
});
