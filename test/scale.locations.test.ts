/**
 * Issue 9 part A: several run locations — on PostgreSQL in two databases (a0 with the control plane
 * in one, b1 in another), on PGlite two locations in one database. Cutover during a stream of
 * triggers, a walk through every run across it, idempotency straddling a flip, relations across
 * locations (child wakes parent, cancel cascades), the mint site's statement count, listing
 * predicates, and the configuration's errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError } from '../src/core/errors.js';
import { slotKey } from '../src/core/cron.js';
import { mintRunScopedId } from '../src/core/ids.js';
import { cutoverOrganization, readLocations } from '../src/engine/cutover.js';
import { triggerRun } from '../src/engine/trigger.js';
import { defineWorkflow } from '../src/index.js';
import type { Executor } from '../src/store/executor.js';
import { parseLocationsEnv } from '../src/store/locations.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import { createPgliteExecutor } from '../src/store/pglite-executor.js';
import type { RunRecord } from '../src/store/rows.js';
import { createStores, type Stores } from '../src/store/stores.js';
import { BACKENDS, createPgDatabase } from './support/databases.js';
import { startTestEngine } from './support/engine.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Counts the statements an executor runs (instrumentation of the real executor, not a mock).
 * The post-commit wake-up (`select pg_notify(…)`, coalesced per tick, signals.ts) is counted
 * apart: it is not a read or a write of the trigger.
 */
function countQueries(db: Executor): {
  count: () => number;
  notifies: () => number;
  sql: string[];
  stop: () => void;
} {
  const original = db.query.bind(db);
  const sql: string[] = [];
  (db as { query: Executor['query'] }).query = ((text: string, params?: readonly unknown[]) => {
    sql.push(text);
    return original(text, params);
  }) as Executor['query'];
  const isNotify = (t: string) => t.startsWith('select pg_notify(');
  return {
    count: () => sql.filter((t) => !isNotify(t)).length,
    notifies: () => sql.filter(isNotify).length,
    sql,
    stop: () => void ((db as { query: Executor['query'] }).query = original),
  };
}

interface TwoLocations {
  stores: Stores;
  home: Executor;
  other: Executor;
  urls: string[];
  close(): Promise<void>;
}

async function openTwoLocations(backend: 'pglite' | 'postgres'): Promise<TwoLocations> {
  if (backend === 'pglite') {
    const home = await createPgliteExecutor();
    const stores = createStores({ control: home, locationTags: ['a0', 'b1'] });
    await stores.migrate();
    return { stores, home, other: home, urls: [], close: () => stores.close() };
  }
  const one = await createPgDatabase('loc_a');
  const two = await createPgDatabase('loc_b');
  const home = createPgExecutor({ connectionString: one.url, max: 10 });
  const other = createPgExecutor({ connectionString: two.url, max: 10 });
  const stores = createStores({
    control: home,
    locations: [{ tag: 'a0' }, { tag: 'b1', executor: other, url: two.url }],
    defaultLocationTag: 'a0',
  });
  await stores.migrate();
  return {
    stores,
    home,
    other,
    urls: [one.url, two.url],
    close: async () => {
      await stores.close();
      await one.drop();
      await two.drop();
    },
  };
}

const tagOf = (id: string) => id.slice(id.indexOf('_') + 1, id.indexOf('_') + 3);

describe('location configuration (WEFT_LOCATIONS)', () => {
  it('parses tags and URLs; a tag without URL lives in the home run-ops database', () => {
    expect(parseLocationsEnv({})).toEqual([{ tag: 'a0', url: undefined, isDefault: true }]);
    expect(
      parseLocationsEnv({
        WEFT_LOCATIONS: 'a0, b1=postgres://u:p@h2/ops2',
        WEFT_DEFAULT_LOCATION: 'b1',
      }),
    ).toEqual([
      { tag: 'a0', url: undefined, isDefault: false },
      { tag: 'b1', url: 'postgres://u:p@h2/ops2', isDefault: true },
    ]);
  });

  it.each([
    [{ WEFT_LOCATIONS: 'a0,a0' }, 'names location "a0" twice'],
    [{ WEFT_LOCATIONS: 'A0' }, '"A0" (in entry "A0") is not a location tag'],
    [{ WEFT_LOCATIONS: 'a0,b1=mysql://u:secret@h/x' }, 'location "b1" has URL "mysql://u:***@h/x"'],
    [{ WEFT_LOCATIONS: 'a0', WEFT_DEFAULT_LOCATION: 'b1' }, 'WEFT_DEFAULT_LOCATION is "b1"'],
    [{ WEFT_LOCATIONS: ' , ' }, 'names no location'],
  ])('refuses %j, naming the setting and the fix', (env, message) => {
    let caught: unknown;
    try {
      parseLocationsEnv(env);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(WeftError);
    expect((caught as WeftError).code).toBe('invalid_config');
    expect((caught as WeftError).message).toContain(message);
    expect((caught as WeftError).message).not.toContain('secret');
  });
});

describe.each(BACKENDS)('two run locations on %s', (backend) => {
  let t: TwoLocations;
  beforeAll(async () => {
    t = await openTwoLocations(backend);
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  const wf = defineWorkflow<{ n: number }>('count').step('one', ({ n }) => n + 1);

  async function tenant(): Promise<{ environmentId: string; organizationId: string }> {
    const suffix = Math.random().toString(36).slice(2, 10);
    return t.stores.control.createTenant({
      organization: `org-${suffix}`,
      project: `prj-${suffix}`,
      environment: 'test',
    });
  }

  it('migrates every location in its own database and lists them', async () => {
    const list = t.stores.listLocations();
    expect(list.map((l) => [l.tag, l.schema, l.isDefault, l.home])).toEqual([
      ['a0', 'weft_loc_a0', true, true],
      ['b1', 'weft_loc_b1', false, backend === 'pglite'],
    ]);
    for (const [db, schema] of [
      [t.home, 'weft_loc_a0'],
      [t.other, 'weft_loc_b1'],
    ] as const) {
      const rows = await db.query<{ n: number }>(
        `select count(*)::int as n from information_schema.tables where table_schema = $1 and table_name = 'runs'`,
        [schema],
      );
      expect(rows.rows[0]!.n).toBe(1);
    }
    // location/0011: every id column collates "C" (the merge compares bytes)
    const loose = await t.other.query<{ c: string }>(
      `select table_name || '.' || column_name as c from information_schema.columns
        where table_schema = 'weft_loc_b1' and data_type = 'text'
          and (column_name = 'id' or column_name like '%\\_id' or column_name in ('rerun_of', 'reused_from'))
          and column_name <> 'worker_id' and coalesce(collation_name, '') <> 'C'
          and table_name in (select table_name from information_schema.tables where table_schema = 'weft_loc_b1' and table_type = 'BASE TABLE')`,
    );
    expect(loose.rows).toEqual([]);
    expect(await t.stores.isReady()).toBe(true);
  });

  it('cutover during a stream of triggers: each run lands where the flag said at its mint; a walk with page size 7 finds every run once, in order (many with equal created_at)', async () => {
    const engine = await startTestEngine(t.stores, [wf], { worker: false });
    try {
      const envId = engine.environmentId;
      const env = (await t.stores.control.getEnvironment(envId))!;
      const minted: RunRecord[] = [];
      let flipped = false;
      // a stream of triggers, 4 in flight at a time, with the cutover in the middle
      let afterFlip = 0;
      const stream = async (worker: number) => {
        // until 40 triggers started after the flip returned
        for (let i = 0; afterFlip < 40 && i < 300; i++) {
          await sleep(1); // a stream of triggers, not a wall: the flip gets its turn
          const before = flipped;
          if (before) afterFlip++;
          const { run } = await engine.trigger('count', { n: worker * 1000 + i });
          minted.push(run);
          // a trigger that started after the flip returned must be in the new location
          if (before) expect(tagOf(run.id)).toBe('b1');
        }
      };
      const streams = [0, 1, 2, 3].map(stream);
      while (minted.length < 40) await sleep(2);
      const result = await cutoverOrganization(t.stores, env.organizationId, 'b1');
      flipped = true;
      expect(result).toMatchObject({ previous: 'a0', location: 'b1', locations: ['a0', 'b1'] });
      await Promise.all(streams);
      const tags = new Set(minted.map((r) => tagOf(r.id)));
      expect(tags).toEqual(new Set(['a0', 'b1']));

      // many runs with one created_at, in both locations (bulk rows, as a busy second makes)
      const at = new Date(Date.now() + 60_000).toISOString();
      for (const [db, tag] of [
        [t.home, 'a0'],
        [t.other, 'b1'],
      ] as const) {
        const ids = Array.from({ length: 25 }, () => mintRunScopedId('run', tag));
        await db.query(
          `insert into weft_loc_${tag}.runs (id, environment_id, workflow_id, version_id, status, trigger_kind, save_dataclips, created_at)
           select unnest($1::text[]), $2, 'count', 'wfv_x', 'succeeded', 'api', true, $3::timestamptz`,
          [ids, envId, at],
        );
      }
      const fresh = (await t.stores.control.getEnvironment(envId))!;
      const locations = readLocations(fresh.flags, t.stores.runs);
      expect(locations.sort()).toEqual(['a0', 'b1']);
      const seen: RunRecord[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 1000; pages++) {
        const q: Parameters<Stores['runs']['listRuns']>[0] = {
          environmentId: envId,
          limit: 7,
          locations,
        };
        if (cursor) q.cursor = cursor;
        const page = await t.stores.runs.listRuns(q);
        seen.push(...page.data);
        if (!page.nextCursor) break;
        cursor = page.nextCursor;
      }
      expect(seen).toHaveLength(minted.length + 50);
      expect(new Set(seen.map((r) => r.id)).size).toBe(seen.length);
      // the order, from each database's own microsecond timestamps
      const key = new Map<string, string>();
      for (const loc of t.stores.runs.locations.values()) {
        const rows = await loc.db.query<{ id: string; k: string }>(
          `select id, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as k
             from ${loc.schema}.runs where environment_id = $1`,
          [envId],
        );
        for (const r of rows.rows) key.set(r.id, r.k);
      }
      const expected = [...key.keys()].sort((a, b) => {
        const ka = key.get(a)!;
        const kb = key.get(b)!;
        if (ka !== kb) return ka < kb ? 1 : -1;
        return a < b ? 1 : a > b ? -1 : 0;
      });
      expect(seen.map((r) => r.id)).toEqual(expected);
      expect(seen.filter((r) => r.createdAt === seen[0]!.createdAt)).toHaveLength(50);
      for (const r of minted) expect(seen.some((s) => s.id === r.id)).toBe(true);
    } finally {
      await engine.stop();
    }
  }, 60_000);

  it('the mint site adds no query: a trigger is one statement in one location before and after the cutover, none on the control plane', async () => {
    // register the workflow, then stop the engine: its timers (reaper, waitpoints) stay quiet
    const engine = await startTestEngine(t.stores, [wf], { worker: false });
    await engine.stop();
    const environmentId = engine.environmentId;
    const trigger = (n: number) =>
      triggerRun(t.stores, { environmentId, workflowId: 'count', input: { n } });
    const env = (await t.stores.control.getEnvironment(environmentId))!;
    await trigger(0); // warm the caches
    const measure = async () => {
      await sleep(30); // earlier wake-ups flushed
      const counters = [t.home, ...(t.other === t.home ? [] : [t.other])].map(countQueries);
      try {
        const { run } = await trigger(1);
        await sleep(30); // its own wake-up flushed
        expect(counters.reduce((a, c) => a + c.notifies(), 0)).toBe(1);
        return { run, statements: counters.map((c) => c.count()), sql: counters.map((c) => c.sql) };
      } finally {
        counters.reverse().forEach((c) => c.stop());
      }
    };
    const before = await measure();
    expect(tagOf(before.run.id)).toBe('a0');
    expect(before.statements.reduce((a, b) => a + b)).toBe(1);
    expect(before.sql.flat()[0]).toContain('insert into weft_loc_a0.runs');
    await cutoverOrganization(t.stores, env.organizationId, 'b1');
    await trigger(2); // the flip dropped the cached row: one re-read
    await sleep(50); // the flip's NOTIFY (weft_control_changed) arrives and drops it again
    await trigger(3);
    const after = await measure();
    expect(tagOf(after.run.id)).toBe('b1');
    expect(after.statements.reduce((a, b) => a + b)).toBe(1);
    if (backend === 'postgres') expect(after.statements).toEqual([0, 1]);
  });

  it('50 concurrent triggers with one key straddling a flip make one run (5 rounds); a crashed pending claim expires', async () => {
    const engine = await startTestEngine(t.stores, [wf], { worker: false });
    try {
      const env = (await t.stores.control.getEnvironment(engine.environmentId))!;
      for (let round = 0; round < 5; round++) {
        // rounds 3 and 4: the keys a webhook delivery and a cron slot use (same claim path)
        const kinds = [
          { key: `straddle-${round}`, trigger: { kind: 'api' as const, ref: null } },
          { key: `straddle-${round}`, trigger: { kind: 'api' as const, ref: null } },
          { key: `straddle-${round}`, trigger: { kind: 'api' as const, ref: null } },
          {
            key: 'webhook:hook_x:delivery-42',
            trigger: { kind: 'webhook' as const, ref: 'hook_x' },
          },
          {
            key: slotKey('sch_x', new Date('2026-11-29T15:00:00Z')),
            trigger: { kind: 'cron' as const, ref: 'sch_x' },
          },
        ];
        const { key, trigger } = kinds[round]!;
        const fire = () => engine.trigger('count', { n: round }, { idempotencyKey: key, trigger });
        const first = Array.from({ length: 25 }, fire);
        const flip = cutoverOrganization(
          t.stores,
          env.organizationId,
          round % 2 === 0 ? 'b1' : null,
        );
        const second = Array.from({ length: 25 }, fire);
        await flip;
        const third = Array.from({ length: 10 }, fire);
        const results = await Promise.all([...first, ...second, ...third]);
        const ids = new Set(results.map((r) => r.run.id));
        expect(ids.size).toBe(1);
        expect(results.filter((r) => !r.deduplicated)).toHaveLength(1);
        let rows = 0;
        for (const loc of t.stores.runs.locations.values()) {
          const found = await loc.db.query(
            `select id from ${loc.schema}.runs where environment_id = $1 and idempotency_key = $2`,
            [engine.environmentId, key],
          );
          rows += found.rows.length;
        }
        expect(rows).toBe(1);
      }
      // a process that claimed a key (pending) and crashed before creating its run: once the
      // claim expires the next trigger takes it over and makes the run
      await t.home.query(
        `insert into weft_ops.idempotency_keys (environment_id, workflow_id, key, run_id, input_hash, state, expires_at)
         values ($1, 'count', 'crashed', $2, md5('{"n":7}'::jsonb::text), 'pending', now() - interval '1 second')`,
        [engine.environmentId, mintRunScopedId('run', 'b1')],
      );
      const taken = await engine.trigger('count', { n: 7 }, { idempotencyKey: 'crashed' });
      expect(taken.deduplicated).toBe(false);
      const again = await engine.trigger('count', { n: 7 }, { idempotencyKey: 'crashed' });
      expect(again).toMatchObject({ deduplicated: true, run: { id: taken.run.id } });
      // …and one that crashed after creating its run, before marking the claim: the run it
      // named is the key's (no second run)
      const orphan = await engine.trigger('count', { n: 8 });
      await t.home.query(
        `insert into weft_ops.idempotency_keys (environment_id, workflow_id, key, run_id, input_hash, state, expires_at)
         values ($1, 'count', 'crashed-after', $2, md5('{"n":8}'::jsonb::text), 'pending', now() - interval '1 second')`,
        [engine.environmentId, orphan.run.id],
      );
      const adopted = await engine.trigger('count', { n: 8 }, { idempotencyKey: 'crashed-after' });
      expect(adopted).toMatchObject({ deduplicated: true, run: { id: orphan.run.id } });
    } finally {
      await engine.stop();
    }
  }, 60_000);

  it('a child in one location wakes its parent in another; cancel cascades across locations', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const child = defineWorkflow<{ n: number }>('kid').step('inc', ({ n }) => n + 1);
    const parent = defineWorkflow<number>('parent')
      .step('hold', async (n) => {
        await gate;
        return n;
      })
      .subWorkflow('call', { workflow: 'kid', input: (n) => ({ n }), after: 'hold' })
      .step('use', { after: 'call' }, (x) => ({ got: x }));
    const sleeper = defineWorkflow('sleeper').sleep('nap', { duration: '1h' });
    const holder = defineWorkflow<number>('holder')
      .step('hold', async (n) => {
        await gate;
        return n;
      })
      .subWorkflow('kid', { workflow: 'sleeper', after: 'hold' });
    const engine = await startTestEngine(t.stores, [child, parent, sleeper, holder]);
    try {
      const env = (await t.stores.control.getEnvironment(engine.environmentId))!;
      const { run } = await engine.trigger('parent', 4);
      const { run: held } = await engine.trigger('holder', 1);
      expect(tagOf(run.id)).toBe('a0');
      await cutoverOrganization(t.stores, env.organizationId, 'b1');
      release();
      const done = await engine.waitForRun(run.id, { timeoutMs: 20_000 });
      expect(done.status).toBe('succeeded');
      const kids = await t.stores.runs.listRuns({
        environmentId: engine.environmentId,
        workflowId: 'kid',
        limit: 5,
      });
      expect(kids.data).toHaveLength(1);
      expect(tagOf(kids.data[0]!.id)).toBe('b1');
      expect(kids.data[0]!.parentRunId).toBe(run.id);

      // the holder's child (a 1 h sleep) is in b1; canceling the parent in a0 cancels it
      let sleeping: RunRecord | undefined;
      for (let i = 0; i < 200 && !sleeping; i++) {
        const page = await t.stores.runs.listRuns({
          environmentId: engine.environmentId,
          workflowId: 'sleeper',
          limit: 5,
        });
        sleeping = page.data.find((r) => r.status === 'waiting' || r.status === 'running');
        if (!sleeping) await sleep(50);
      }
      expect(sleeping && tagOf(sleeping.id)).toBe('b1');
      await engine.cancel(held.id);
      const kid = await t.stores.runs.getRun(engine.environmentId, sleeping!.id);
      expect(kid?.status).toBe('canceled');
      // hierarchy stays in the environment: the parent is not visible from another one
      const stranger = await tenant();
      expect(await t.stores.runs.getRun(stranger.environmentId, run.id)).toBeUndefined();
      expect(await t.stores.runs.getRun(stranger.environmentId, sleeping!.id)).toBeUndefined();
    } finally {
      release();
      await engine.stop();
    }
  }, 60_000);

  it('listing: ids name the only locations read; an organization never cut over reads one; a foreign cursor is refused', async () => {
    const engine = await startTestEngine(t.stores, [wf], { worker: false });
    try {
      const envId = engine.environmentId;
      const runs: RunRecord[] = [];
      for (let i = 0; i < 5; i++) runs.push((await engine.trigger('count', { n: i })).run);
      await engine.stop(); // its timers stay quiet while statements are counted
      const env = (await t.stores.control.getEnvironment(envId))!;
      const locations = readLocations(env.flags, t.stores.runs);
      expect(locations).toEqual(['a0']);
      await sleep(20); // the triggers' wake-ups flushed
      const other = t.other === t.home ? undefined : countQueries(t.other);
      const home = t.other === t.home ? undefined : countQueries(t.home);
      try {
        const page = await t.stores.runs.listRuns({ environmentId: envId, limit: 2, locations });
        expect(page.data.map((r) => r.id)).toEqual([runs[4]!.id, runs[3]!.id]);
        const byIds = await t.stores.runs.listRuns({
          environmentId: envId,
          limit: 10,
          runIds: [runs[0]!.id, runs[2]!.id, 'run_nope'],
        });
        expect(byIds.data.map((r) => r.id)).toEqual([runs[2]!.id, runs[0]!.id]);
        if (other) expect(other.count()).toBe(0); // b1 never asked
        if (home) expect(home.count()).toBe(2);
        // ids that name only b1: a0 is not asked
        await t.stores.runs.listRuns({
          environmentId: envId,
          limit: 10,
          runIds: [mintRunScopedId('run', 'b1')],
        });
        if (home) expect(home.count()).toBe(2);
        if (other) expect(other.count()).toBe(1);
        // foreign cursor: a cursor of the unfiltered listing used with a workflowId filter
        const foreign = await t.stores.runs
          .listRuns({
            environmentId: envId,
            limit: 2,
            workflowId: 'other',
            cursor: page.nextCursor!,
          })
          .catch((e: unknown) => e);
        expect(foreign).toMatchObject({ code: 'invalid_cursor' });
        expect((foreign as Error).message).toContain('was issued for another listing');
        const stranger = await tenant();
        const otherEnv = await t.stores.runs
          .listRuns({ environmentId: stranger.environmentId, limit: 2, cursor: page.nextCursor! })
          .catch((e: unknown) => e);
        expect(otherEnv).toMatchObject({ code: 'invalid_cursor' });
      } finally {
        home?.stop();
        other?.stop();
      }
      // by id: a malformed id answers without a query; an unknown tag routes to the default
      const probe = countQueries(t.home);
      try {
        expect(await t.stores.runs.getRun(envId, 'run_!!')).toBeUndefined();
        expect(probe.count()).toBe(0);
        expect(t.stores.runs.locationOf(runs[0]!.id.replace('_a0', '_zz'))?.tag).toBe('a0');
      } finally {
        probe.stop();
      }
      // cut over and back: the history keeps both, the flag is gone
      const there = await cutoverOrganization(t.stores, env.organizationId, 'b1');
      const back = await cutoverOrganization(t.stores, env.organizationId, null);
      expect(there.locations).toEqual(['a0', 'b1']);
      expect(back).toMatchObject({ previous: 'b1', location: 'a0', locations: ['a0', 'b1'] });
      const unknown = await cutoverOrganization(t.stores, env.organizationId, 'zz').catch(
        (e: unknown) => e,
      );
      expect(unknown).toMatchObject({ code: 'invalid_input' });
      expect((unknown as Error).message).toContain('"zz" is not a run location');
    } finally {
      await engine.stop();
    }
  });
});
