/**
 * In-process metrics in the Prometheus text exposition format (version 0.0.4), served by
 * `GET /metrics`.
 *
 * A small registry of its own rather than `prom-client`: Weft needs three metric types, labels,
 * and one render function (~150 lines); prom-client brings a process-wide default registry that
 * two embedded engines (or a test file running two backends) would share by accident, plus
 * dependencies and default process collectors we do not want on by default. Counters and
 * histograms live in memory; recording is a Map lookup and a few additions, with no IO, so the
 * worker's hot path pays nothing measurable. Values are per process, as Prometheus expects:
 * each process that runs a worker exposes its own and the server sums them.
 */

type Labels = Record<string, string>;

/** Label values are escaped as the text format asks: backslash, double quote, newline. */
function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.entries(labels);
  if (extra) pairs.push(extra);
  if (pairs.length === 0) return '';
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** Numbers as the format writes them: `+Inf`, `-Inf`, `NaN`, else JavaScript's shortest form. */
export function formatValue(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  if (Number.isNaN(value)) return 'NaN';
  return String(value);
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** One sample line of a gauge or counter family rendered outside a registry (database gauges). */
export interface Sample {
  labels: Labels;
  value: number;
}

/** `# HELP`, `# TYPE` and the samples of one family. */
export function renderFamily(
  name: string,
  type: 'counter' | 'gauge' | 'histogram',
  help: string,
  samples: readonly Sample[],
): string {
  const lines = [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`];
  for (const s of samples) lines.push(`${name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  return `${lines.join('\n')}\n`;
}

abstract class Metric<L extends string> {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
  ) {
    if (!METRIC_NAME.test(name)) throw new Error(`metric name "${name}" is not valid`);
    for (const l of labelNames)
      if (!LABEL_NAME.test(l) || l === 'le')
        throw new Error(`label name "${l}" of metric ${name} is not valid`);
  }

  /** Key of a label set: values joined by NUL (which label values never contain in practice). */
  protected key(labels: Record<L, string>): string {
    return this.labelNames.map((l) => labels[l]).join('\u0000');
  }

  protected labelsOf(labels: Record<L, string>): Labels {
    const out: Labels = {};
    for (const l of this.labelNames) out[l] = labels[l];
    return out;
  }

  abstract render(): string;
}

export class Counter<L extends string = never> extends Metric<L> {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  inc(labels: Record<L, string>, by = 1): void {
    const key = this.key(labels);
    const entry = this.values.get(key);
    if (entry) entry.value += by;
    else this.values.set(key, { labels: this.labelsOf(labels), value: by });
  }

  get(labels: Record<L, string>): number {
    return this.values.get(this.key(labels))?.value ?? 0;
  }

  render(): string {
    return renderFamily(this.name, 'counter', this.help, [...this.values.values()]);
  }
}

export class Histogram<L extends string = never> extends Metric<L> {
  private readonly series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; count: number }
  >();

  constructor(
    name: string,
    help: string,
    labelNames: readonly L[],
    /** Upper bounds, ascending; `+Inf` is implied. */
    readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames);
    for (let i = 1; i < buckets.length; i++)
      if (!(buckets[i]! > buckets[i - 1]!))
        throw new Error(`buckets of histogram ${name} must increase`);
  }

  observe(labels: Record<L, string>, value: number): void {
    const key = this.key(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: this.labelsOf(labels), counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    // Non-cumulative per bucket here; render() accumulates.
    const i = this.buckets.findIndex((b) => value <= b);
    if (i !== -1) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** Observations so far for a label set (tests, diagnostics). */
  count(labels: Record<L, string>): number {
    return this.series.get(this.key(labels))?.count ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += s.counts[i]!;
        lines.push(
          `${this.name}_bucket${formatLabels(s.labels, ['le', formatValue(b)])} ${cumulative}`,
        );
      });
      lines.push(`${this.name}_bucket${formatLabels(s.labels, ['le', '+Inf'])} ${s.count}`);
      lines.push(`${this.name}_sum${formatLabels(s.labels)} ${formatValue(s.sum)}`);
      lines.push(`${this.name}_count${formatLabels(s.labels)} ${s.count}`);
    }
    return `${lines.join('\n')}\n`;
  }
}

/**
 * A family whose samples are read at render time from its sources (state that lives elsewhere,
 * like a LISTEN connection's). Sources are keyed by the object they describe, so one registered
 * twice (an engine and a server in one process) counts once; samples of different sources with
 * the same labels are merged with `merge`.
 */
export class CollectedFamily extends Metric<never> {
  /** Held weakly: an app or engine that is dropped without stopping must not be kept alive. */
  private readonly sources = new Map<WeakRef<object>, (key: object) => Sample[]>();

  constructor(
    name: string,
    help: string,
    readonly type: 'gauge' | 'counter',
    private readonly merge: (a: number, b: number) => number,
  ) {
    super(name, help, []);
  }

  /**
   * Add a source (replacing one with the same key); returns a function that removes it. `collect`
   * gets the key, so it need not hold it.
   */
  track<K extends object>(key: K, collect: (key: K) => Sample[]): () => void {
    for (const ref of this.sources.keys()) if (ref.deref() === key) this.sources.delete(ref);
    const ref = new WeakRef<object>(key);
    this.sources.set(ref, collect as (key: object) => Sample[]);
    return () => void this.sources.delete(ref);
  }

  render(): string {
    const merged = new Map<string, Sample>();
    for (const [ref, collect] of this.sources) {
      const key = ref.deref();
      if (key === undefined) {
        this.sources.delete(ref);
        continue;
      }
      for (const s of collect(key)) {
        const key = JSON.stringify(Object.entries(s.labels).sort());
        const seen = merged.get(key);
        if (seen) seen.value = this.merge(seen.value, s.value);
        else merged.set(key, { labels: s.labels, value: s.value });
      }
    }
    return renderFamily(this.name, this.type, this.help, [...merged.values()]);
  }
}

/**
 * A set of metrics rendered together. Registering a name twice returns the metric already
 * there (several engines of one process share the registry), as long as its type matches.
 */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric<string>>();

  counter<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
  ): Counter<L> {
    return this.add(name, Counter, () => new Counter<L>(name, help, labelNames));
  }

  histogram<L extends string = never>(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly L[] = [],
  ): Histogram<L> {
    return this.add(name, Histogram, () => new Histogram<L>(name, help, labelNames, buckets));
  }

  /** A gauge or counter read from its sources at render time (see CollectedFamily). */
  collected(
    name: string,
    type: 'gauge' | 'counter',
    help: string,
    merge: (a: number, b: number) => number,
  ): CollectedFamily {
    return this.add(name, CollectedFamily, () => new CollectedFamily(name, help, type, merge));
  }

  private add<M extends Metric<string>>(
    name: string,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    type: abstract new (...args: any[]) => M,
    create: () => M,
  ): M {
    const existing = this.metrics.get(name);
    if (existing) {
      if (!(existing instanceof type))
        throw new Error(`metric ${name} is already registered with another type`);
      return existing;
    }
    const metric = create();
    this.metrics.set(name, metric);
    return metric;
  }

  /** Every metric in the text format, in registration order. */
  render(): string {
    return [...this.metrics.values()].map((m) => m.render()).join('');
  }
}

/** The registry of this process: what the worker records into and `/metrics` serves by default. */
export const processMetrics = new MetricsRegistry();

const STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const CLAIM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** What the worker and the reaper record. Workflow labels are workflow ids (bounded). */
export interface EngineMetrics {
  claimDuration: Histogram;
  claimedSteps: Counter;
  stepDuration: Histogram<'workflow' | 'outcome'>;
  stepsSucceeded: Counter<'workflow'>;
  attemptFailures: Counter<'workflow'>;
  retries: Counter<'workflow'>;
  stepsFailed: Counter<'workflow'>;
  fencedCommits: Counter;
  reapedAttempts: Counter;
  commitRetries: Counter;
}

const engineMetricsByRegistry = new WeakMap<MetricsRegistry, EngineMetrics>();

/** The engine's metrics in a registry (created once per registry). */
export function engineMetrics(registry: MetricsRegistry = processMetrics): EngineMetrics {
  const existing = engineMetricsByRegistry.get(registry);
  if (existing) return existing;
  const m: EngineMetrics = {
    claimDuration: registry.histogram(
      'weft_claim_duration_seconds',
      'Time a worker waited on one claim statement (claim_steps round trip), whether it claimed anything or not.',
      CLAIM_BUCKETS,
    ),
    claimedSteps: registry.counter(
      'weft_claimed_steps_total',
      'Step runs claimed by the claim loop (steps handed over by a commit in a chain are not counted).',
    ),
    stepDuration: registry.histogram(
      'weft_step_duration_seconds',
      'Time the code of one attempt of a function step ran, by workflow and outcome (succeeded or failed).',
      STEP_BUCKETS,
      ['workflow', 'outcome'],
    ),
    stepsSucceeded: registry.counter(
      'weft_steps_succeeded_total',
      'Attempts whose output was committed (step runs that succeeded, control nodes included).',
      ['workflow'],
    ),
    attemptFailures: registry.counter(
      'weft_attempt_failures_total',
      'Attempts that failed (error, timeout, invalid output), whether retried or not.',
      ['workflow'],
    ),
    retries: registry.counter(
      'weft_step_retries_total',
      'Failed attempts whose step was requeued for another attempt.',
      ['workflow'],
    ),
    stepsFailed: registry.counter(
      'weft_steps_failed_total',
      'Step runs that failed for good (terminal error or last attempt).',
      ['workflow'],
    ),
    fencedCommits: registry.counter(
      'weft_fenced_commits_total',
      'Commits rejected because the attempt no longer held its lease (expired, reaped or canceled).',
    ),
    commitRetries: registry.counter(
      'weft_commit_retries_total',
      'Commits retried because the database was unavailable (restart, dropped connection); each is fenced, so a retry never commits twice.',
    ),
    reapedAttempts: registry.counter(
      'weft_reaped_attempts_total',
      'Attempts this process marked lost because their lease expired (their worker crashed, paused or lost the database).',
    ),
  };
  engineMetricsByRegistry.set(registry, m);
  return m;
}

/** What the listener gauges read: an executor's LISTEN connection (src/store/executor.ts). */
export interface ListenerSource {
  /** `control` or `run_ops`: which database the connection is to. */
  database: string;
  db: { listenerHealth?(): { state: string; reconnects: number } };
}

/**
 * Export LISTEN connection health: `weft_listener_connected` (1 connected, 0 down or connecting)
 * and `weft_listener_reconnects_total`, by database. Keyed by `key` (the executor), so an engine
 * and a server of one process that track the same executor count it once; two executors of one
 * kind in one process (tests) merge: connected is the minimum, reconnects the sum. Returns a
 * function that stops tracking.
 */
export function trackListeners(
  registry: MetricsRegistry,
  sources: readonly ListenerSource[],
): () => void {
  const connected = registry.collected(
    'weft_listener_connected',
    'gauge',
    'Whether the LISTEN connection to a database is up (1) or down/reconnecting (0): while it is down, wake-ups and cancels fall back to polling.',
    Math.min,
  );
  const reconnects = registry.collected(
    'weft_listener_reconnects_total',
    'counter',
    'Times the LISTEN connection to a database came back after being lost (each followed by a catch-up poll).',
    (a, b) => a + b,
  );
  const stops = sources.flatMap(({ database, db }) => {
    const read =
      (value: (h: { state: string; reconnects: number }) => number) =>
      (key: ListenerSource['db']): Sample[] => {
        const h = key.listenerHealth?.();
        if (!h || h.state === 'idle' || h.state === 'closed') return [];
        return [{ labels: { database }, value: value(h) }];
      };
    return [
      connected.track(
        db,
        read((h) => (h.state === 'connected' ? 1 : 0)),
      ),
      reconnects.track(
        db,
        read((h) => h.reconnects),
      ),
    ];
  });
  return () => stops.forEach((stop) => stop());
}
