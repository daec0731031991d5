/**
 * GET /metrics: the exposition is valid Prometheus text (checked line by line), and its numbers
 * are what happened — steps succeeded, attempts failed and retried, steps failed for good,
 * durations observed, a lost attempt reaped — and what the database holds: queue depth and
 * active runs of an environment with no worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/engine/engine.js';
import { silentLogger } from '../src/engine/logger.js';
import { MetricsRegistry, renderFamily } from '../src/engine/metrics.js';
import { defineWorkflow, TerminalError } from '../src/index.js';
import { createApp, type ServerApp } from '../src/server/index.js';
import { createMetricsApp } from '../src/server/routes/metrics.js';
import { BACKENDS, openTestDatabase, type TestDatabase } from './support/databases.js';

const chain = defineWorkflow<unknown>('chain')
  .step('a', () => 1)
  .step('b', { after: 'a' }, (n) => n + 1);
let flakyCalls = 0;
const flaky = defineWorkflow<unknown>('flaky').step(
  'once',
  { retry: { maxAttempts: 3, minDelay: '1ms', maxDelay: '1ms' } },
  () => {
    flakyCalls++;
    if (flakyCalls === 1) throw new Error('first call fails');
    return 'ok';
  },
);
const doomed = defineWorkflow<unknown>('doomed').step('never', () => {
  throw new TerminalError('no');
});

interface Exposition {
  types: Map<string, string>;
  /** `name{a="x",b="y"}` (labels sorted) → value. */
  samples: Map<string, number>;
}

const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

/**
 * Parse the text format strictly: every line is a HELP, a TYPE or a sample; each family is
 * typed once, before its samples; values are numbers; a series appears once; histogram buckets
 * are cumulative and end with le="+Inf" equal to _count.
 */
function parseExposition(text: string): Exposition {
  expect(text.endsWith('\n')).toBe(true);
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples = new Map<string, number>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      const name = line.split(' ')[2]!;
      expect(helps.has(name), `HELP twice for ${name}`).toBe(false);
      helps.add(name);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, , name, type, ...rest] = line.split(' ');
      expect(rest, line).toEqual([]);
      expect(['counter', 'gauge', 'histogram'], line).toContain(type);
      expect(types.has(name!), `TYPE twice for ${name}`).toBe(false);
      types.set(name!, type!);
      continue;
    }
    const m = SAMPLE.exec(line);
    expect(m, `not a sample line: ${JSON.stringify(line)}`).not.toBeNull();
    const [, name, labelText, valueText] = m!;
    const value = valueText === '+Inf' ? Infinity : Number(valueText);
    expect(Number.isNaN(value), `value of ${line}`).toBe(false);
    const family = types.has(name!) ? name! : name!.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(family), `sample before its TYPE: ${line}`).toBe(true);
    if (family !== name) expect(types.get(family)).toBe('histogram');
    const labels = [...(labelText ?? '').matchAll(LABEL)].map((l) => `${l[1]}="${l[2]}"`).sort();
    const key = labels.length ? `${name}{${labels.join(',')}}` : name!;
    expect(samples.has(key), `series twice: ${key}`).toBe(false);
    samples.set(key, value);
  }
  // Histograms: cumulative buckets, +Inf equals _count.
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Array<[number, number]>>();
    for (const [key, value] of samples) {
      if (!key.startsWith(`${family}_bucket{`)) continue;
      const le = /le="([^"]+)"/.exec(key)![1]!;
      const rest = key
        .replace(`${family}_bucket`, '')
        .replace(/le="[^"]+",?/, '')
        .replace(',}', '}');
      const list = series.get(rest) ?? [];
      list.push([le === '+Inf' ? Infinity : Number(le), value]);
      series.set(rest, list);
    }
    for (const [rest, buckets] of series) {
      buckets.sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < buckets.length; i++)
        expect(buckets[i]![1]).toBeGreaterThanOrEqual(buckets[i - 1]![1]);
      expect(buckets.at(-1)![0]).toBe(Infinity);
      const countKey = `${family}_count${rest === '{}' ? '' : rest}`;
      expect(buckets.at(-1)![1]).toBe(samples.get(countKey));
    }
  }
  return { types, samples };
}

const series = (name: string, labels: Record<string, string> = {}) => {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return l.length ? `${name}{${l.join(',')}}` : name;
};

describe('the exposition format', () => {
  it('escapes label values and help text', () => {
    const text = renderFamily('weft_x', 'gauge', 'help with \\ and\nnewline', [
      { labels: { workflow: 'a"b\\c\nd' }, value: 1 },
    ]);
    expect(text).toBe(
      '# HELP weft_x help with \\\\ and\\nnewline\n# TYPE weft_x gauge\nweft_x{workflow="a\\"b\\\\c\\nd"} 1\n',
    );
    parseExposition(text);
  });

  it('refuses invalid names and decreasing buckets', () => {
    const r = new MetricsRegistry();
    expect(() => r.counter('bad-name', 'x')).toThrow(/not valid/);
    expect(() => r.histogram('weft_h', 'x', [1, 0.5])).toThrow(/increase/);
    r.counter('weft_c', 'x');
    expect(() => r.histogram('weft_c', 'x', [1])).toThrow(/another type/);
  });
});

describe.each(BACKENDS)('GET /metrics on %s', (backend) => {
  let db: TestDatabase;
  let registry: MetricsRegistry;
  let engine: Engine;
  let idle: Engine;
  let app: ServerApp;

  beforeAll(async () => {
    flakyCalls = 0;
    db = await openTestDatabase(backend);
    registry = new MetricsRegistry();
    const a = await db.stores.control.createTenant({
      organization: 'o',
      project: 'p',
      environment: 'busy',
    });
    const b = await db.stores.control.createTenant({
      organization: 'o2',
      project: 'p2',
      environment: 'idle',
    });
    const common = {
      stores: db.stores,
      workflows: [chain, flaky, doomed],
      reaperIntervalMs: false as const,
      timerIntervalMs: false as const,
      logger: silentLogger(),
      metrics: registry,
    };
    engine = await Engine.start({
      ...common,
      environmentId: a.environmentId,
      worker: { pollIntervalMs: 50 },
    });
    idle = await Engine.start({ ...common, environmentId: b.environmentId, worker: false });
    app = createApp({ stores: db.stores, logger: silentLogger(), metrics: registry });
  });
  afterAll(async () => {
    await idle?.stop();
    await engine?.stop();
    await db?.close();
  });

  async function scrape(): Promise<Exposition> {
    const res = await app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    return parseExposition(await res.text());
  }

  it('counts what the worker did', async () => {
    const runs = await Promise.all([
      engine.trigger('chain', null),
      engine.trigger('chain', null),
      engine.trigger('chain', null),
      engine.trigger('flaky', null),
      engine.trigger('doomed', null),
    ]);
    const done = await Promise.all(runs.map(({ run }) => engine.waitForRun(run.id)));
    expect(done.map((r) => r.status)).toEqual([
      'succeeded',
      'succeeded',
      'succeeded',
      'succeeded',
      'failed',
    ]);
    const { samples, types } = await scrape();
    expect(types.get('weft_steps_succeeded_total')).toBe('counter');
    expect(types.get('weft_step_duration_seconds')).toBe('histogram');
    expect(samples.get(series('weft_steps_succeeded_total', { workflow: 'chain' }))).toBe(6);
    expect(samples.get(series('weft_steps_succeeded_total', { workflow: 'flaky' }))).toBe(1);
    expect(samples.get(series('weft_attempt_failures_total', { workflow: 'flaky' }))).toBe(1);
    expect(samples.get(series('weft_step_retries_total', { workflow: 'flaky' }))).toBe(1);
    expect(samples.get(series('weft_steps_failed_total', { workflow: 'flaky' }))).toBeUndefined();
    expect(samples.get(series('weft_attempt_failures_total', { workflow: 'doomed' }))).toBe(1);
    expect(samples.get(series('weft_steps_failed_total', { workflow: 'doomed' }))).toBe(1);
    expect(samples.get(series('weft_step_retries_total', { workflow: 'doomed' }))).toBeUndefined();
    const durations = (workflow: string, outcome: string) =>
      samples.get(series('weft_step_duration_seconds_count', { workflow, outcome }));
    expect(durations('chain', 'succeeded')).toBe(6);
    expect(durations('flaky', 'failed')).toBe(1);
    expect(durations('flaky', 'succeeded')).toBe(1);
    expect(durations('doomed', 'failed')).toBe(1);
    // Each claim statement is timed; together they handed over at least the root steps.
    expect(samples.get('weft_claim_duration_seconds_count')).toBeGreaterThan(0);
    expect(samples.get('weft_claimed_steps_total')).toBeGreaterThanOrEqual(5);
    expect(samples.get('weft_metrics_database_up')).toBe(1);
    // Nothing is left running or queued in the busy environment.
    for (const key of samples.keys())
      if (key.includes(`environment="${engine.environmentId}"`)) {
        expect(key.startsWith('weft_queue_depth') || key.startsWith('weft_runs_active')).toBe(
          false,
        );
      }
  });

  it('reports queue depth and active runs from the database (no worker)', async () => {
    for (let i = 0; i < 4; i++) await idle.trigger('chain', { i });
    await idle.trigger('flaky', null);
    const { samples } = await scrape();
    const env = idle.environmentId;
    // Only the roots are ready; their successors are pending.
    expect(samples.get(series('weft_queue_depth', { environment: env, workflow: 'chain' }))).toBe(
      4,
    );
    expect(samples.get(series('weft_queue_depth', { environment: env, workflow: 'flaky' }))).toBe(
      1,
    );
    expect(
      samples.get(
        series('weft_runs_active', { environment: env, workflow: 'chain', status: 'queued' }),
      ),
    ).toBe(4);
    expect(
      samples.get(series('weft_step_runs_running', { environment: env, workflow: 'chain' })),
    ).toBeUndefined();
  });

  it('counts attempts reaped after their lease expired, and shows them running until then', async () => {
    const env = idle.environmentId;
    const claimed = await db.stores.runs.claimSteps('ghost-worker', [env], ['chain'], 2, 100);
    expect(claimed).toHaveLength(2);
    const running = await scrape();
    expect(
      running.samples.get(
        series('weft_step_runs_running', { environment: env, workflow: 'chain' }),
      ),
    ).toBe(2);
    expect(
      running.samples.get(series('weft_queue_depth', { environment: env, workflow: 'chain' })),
    ).toBe(2);
    await new Promise((r) => setTimeout(r, 250));
    expect(await idle.reapOnce()).toBe(2);
    const after = await scrape();
    expect(after.samples.get('weft_reaped_attempts_total')).toBe(2);
    // Requeued at once: ready again, nothing running.
    expect(
      after.samples.get(series('weft_queue_depth', { environment: env, workflow: 'chain' })),
    ).toBe(4);
    expect(
      after.samples.get(series('weft_step_runs_running', { environment: env, workflow: 'chain' })),
    ).toBeUndefined();
  });

  it('still answers, with weft_metrics_database_up 0, when the database fails', async () => {
    const broken = createApp({
      stores: {
        ...db.stores,
        runs: Object.assign(Object.create(db.stores.runs) as typeof db.stores.runs, {
          metricsSnapshot: () => Promise.reject(new Error('connection refused')),
        }),
      },
      logger: silentLogger(),
      metrics: registry,
    });
    const res = await broken.request('/metrics');
    expect(res.status).toBe(200);
    const { samples } = parseExposition(await res.text());
    expect(samples.get('weft_metrics_database_up')).toBe(0);
    expect(samples.get(series('weft_steps_succeeded_total', { workflow: 'chain' }))).toBe(6);
    expect([...samples.keys()].some((k) => k.startsWith('weft_queue_depth'))).toBe(false);
  });

  it('serves a worker process’s own metrics alone (weft worker --metrics-port)', async () => {
    const workerApp = createMetricsApp(registry);
    const res = await workerApp.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const { samples } = parseExposition(await res.text());
    expect(samples.get(series('weft_steps_succeeded_total', { workflow: 'chain' }))).toBe(6);
    expect(
      [...samples.keys()].some((k) =>
        /^weft_(queue_depth|runs_active|metrics_database_up)/.test(k),
      ),
    ).toBe(false);
    expect((await workerApp.request('/api/v1/runs')).status).toBe(404);
  });

  it('needs no API key, and can be turned off', async () => {
    expect((await app.request('/metrics')).status).toBe(200);
    const off = createApp({ stores: db.stores, logger: silentLogger(), metrics: false });
    expect((await off.request('/metrics')).status).toBe(404);
  });
});
