/**
 * `weft runs follow <runId>` and `weft trigger <workflow> --follow`: a run rendered live from its
 * Server-Sent Events stream (GET /api/v1/runs/{runId}/events). At a terminal the step table is
 * redrawn in place (queued → running → done, with timings); piped, each transition is one line;
 * with `--json`, each event is one JSON line. A dropped connection is resumed with
 * `Last-Event-ID`, so nothing is shown twice or skipped. Exit status 0 when the run succeeded,
 * 1 otherwise (failed, canceled, paused).
 */
import { startRun, type ClientOptions, type TriggerOptions } from './api-commands.js';
import { ApiClient, resolveConnection, type ApiConnection } from './api-client.js';
import { resolveDataDir } from './local-state.js';
import { CliError, formatDuration } from './output.js';

/** A run event as the API sends it (`data:` of each SSE message). */
export interface ApiRunEvent {
  id: string;
  runId: string;
  kind: string;
  stepKey: string | null;
  attempt: number | null;
  data: unknown;
  createdAt: string;
}

interface ApiRun {
  id: string;
  workflowId: string;
  status: string;
  createdAt: string;
  finishedAt?: string | null;
}

const TERMINAL = new Set(['run.succeeded', 'run.failed', 'run.canceled']);
/** How long a dropped stream is retried before giving up. */
const RECONNECT_FOR_MS = 60_000;

function client(options: ClientOptions): ApiClient {
  return new ApiClient(resolveConnection({ ...options, dataDir: resolveDataDir(options.dataDir) }));
}

export async function runRunsFollow(runId: string, options: ClientOptions): Promise<void> {
  await followRun(client(options), runId, options);
}

export interface TriggerFollowOptions extends TriggerOptions {
  follow?: boolean;
}

/** `weft trigger <workflow> --follow`: start the run, then follow it. */
export async function runTriggerFollow(
  workflowId: string,
  options: TriggerFollowOptions,
): Promise<void> {
  const api = client(options);
  const { status, body: run } = await startRun<ApiRun>(api, workflowId, options);
  if (!options.json && status === 200)
    process.stdout.write(
      `Run ${run.id} already exists for idempotency key "${options.idempotencyKey}"; following it.\n`,
    );
  await followRun(api, run.id, options);
}

/**
 * Follow a run to its end. Resolves when the stream has delivered the terminal event (or the
 * run is paused); sets `process.exitCode = 1` unless the run succeeded.
 */
export async function followRun(
  api: ApiClient,
  runId: string,
  options: { json?: boolean | undefined },
  out: NodeJS.WriteStream = process.stdout,
): Promise<void> {
  const id = encodeURIComponent(runId);
  const [run, stepsBody] = await Promise.all([
    api.get<ApiRun>(`/runs/${id}`),
    api.get<{ data: Array<{ stepKey: string; status: string }> }>(`/runs/${id}/steps`),
  ]);
  const view = options.json
    ? new JsonView(out)
    : out.isTTY
      ? new TableView(out, run, stepsBody.data)
      : new LineView(out, run);
  let outcome: string | undefined;
  try {
    for await (const event of streamRunEvents(api.connection, runId)) {
      view.apply(event);
      if (TERMINAL.has(event.kind)) {
        outcome = event.kind.slice('run.'.length);
        break;
      }
      // A replayed pause may have been resumed since: only a run still paused ends the follow.
      if (
        event.kind === 'run.paused' &&
        (await api.get<ApiRun>(`/runs/${id}`)).status === 'paused'
      ) {
        outcome = 'paused';
        break;
      }
    }
    // The stream answered 204: the run had already ended before the first event we asked for.
    outcome ??= (await api.get<ApiRun>(`/runs/${id}`)).status;
  } finally {
    view.close(outcome, runId);
  }
  if (outcome !== 'succeeded') process.exitCode = 1;
}

/**
 * The events of a run, resuming after a dropped connection with the last id received. Ends
 * after the terminal event (the server closes the stream) or on a 204.
 */
export async function* streamRunEvents(
  connection: ApiConnection,
  runId: string,
  options: { lastEventId?: string; signal?: AbortSignal } = {},
): AsyncGenerator<ApiRunEvent> {
  let lastId = options.lastEventId;
  let failingSince: number | undefined;
  let retryMs = 1000;
  const target = `${connection.url}/api/v1/runs/${encodeURIComponent(runId)}/events`;
  for (;;) {
    let response: Response;
    try {
      const headers: Record<string, string> = {
        authorization: `Bearer ${connection.apiKey}`,
        accept: 'text/event-stream',
      };
      if (lastId !== undefined) headers['last-event-id'] = lastId;
      const init: RequestInit = { headers };
      if (options.signal) init.signal = options.signal;
      response = await fetch(target, init);
    } catch (error) {
      if (options.signal?.aborted) return;
      failingSince ??= Date.now();
      if (Date.now() - failingSince > RECONNECT_FOR_MS)
        throw new CliError(
          `lost the event stream of run ${runId} at ${connection.url} and could not reconnect for ${RECONNECT_FOR_MS / 1000}s (${(error as Error).message}). Follow it again with: weft runs follow ${runId}`,
        );
      await sleep(retryMs);
      continue;
    }
    if (response.status === 204) return;
    if (!response.ok || !response.body) {
      const text = await response.text();
      let code = `http_${response.status}`;
      let message = text.slice(0, 200);
      try {
        const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
        code = parsed.error?.code ?? code;
        message = parsed.error?.message ?? message;
      } catch {
        // not JSON: shown as text
      }
      throw new CliError(`${code}: ${message}`);
    }
    failingSince = undefined;
    let terminal = false;
    try {
      for await (const message of parseSse(response.body)) {
        if (message.retry !== undefined) retryMs = message.retry;
        if (message.data === undefined) continue;
        if (message.event === 'error') {
          // The server could not read the run's events (database away): resume after a pause.
          break;
        }
        const event = JSON.parse(message.data) as ApiRunEvent;
        lastId = message.id ?? event.id;
        yield event;
        if (TERMINAL.has(event.kind)) terminal = true;
      }
    } catch (error) {
      if (options.signal?.aborted) return;
      if (error instanceof CliError) throw error;
      // The connection dropped mid-stream: reconnect below with Last-Event-ID.
    }
    if (terminal) return;
    await sleep(retryMs);
  }
}

interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
}

/** The SSE wire format (WHATWG): blocks separated by a blank line; `:` starts a comment. */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buffer = '';
  let message: SseMessage = {};
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (line === '') {
          if (Object.keys(message).length > 0) yield message;
          message = {};
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data')
          message.data = message.data === undefined ? value : `${message.data}\n${value}`;
        else if (field === 'id') message.id = value;
        else if (field === 'event') message.event = value;
        else if (field === 'retry' && /^\d+$/.test(value)) message.retry = Number(value);
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => {});
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Rendering

interface View {
  apply(event: ApiRunEvent): void;
  close(outcome: string | undefined, runId: string): void;
}

interface StepLine {
  key: string;
  status: string;
  attempt: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  note: string | null;
}

/** What a step's status becomes on an event, and the note shown next to it. */
function stepTransition(event: ApiRunEvent): { status: string; note: string | null } | undefined {
  const data = (event.data ?? {}) as {
    error?: { name?: string; message?: string } | null;
    retryInMs?: number;
    waitpoint?: { id?: string; kind?: string } | null;
  };
  const error = data.error ? `${data.error.name ?? 'Error'}: ${data.error.message ?? ''}` : null;
  switch (event.kind) {
    case 'step.started':
      return { status: 'running', note: null };
    case 'step.succeeded':
      return { status: 'done', note: null };
    case 'step.retrying':
    case 'step.lost':
      return {
        status: 'retrying',
        note: `${event.kind === 'step.lost' ? 'worker lost' : oneLine(error ?? 'failed')}; retry in ${formatMs(data.retryInMs ?? 0)}`,
      };
    case 'step.failed':
      return { status: 'failed', note: error ? oneLine(error) : null };
    case 'step.pruned':
      return { status: 'skipped', note: null };
    case 'step.waiting': {
      const w = data.waitpoint;
      if (w?.kind === 'approval' && w.id)
        return {
          status: 'waiting',
          note: `approval: weft waitpoints complete ${w.id} --payload '{…}'`,
        };
      return { status: 'waiting', note: w?.kind ? `${w.kind}` : null };
    }
    default:
      return undefined;
  }
}

function runLine(event: ApiRunEvent): string | undefined {
  const data = (event.data ?? {}) as {
    error?: { stepKey?: string; error?: { message?: string } } | { message?: string } | null;
    reason?: string;
  };
  switch (event.kind) {
    case 'run.created':
      return 'queued';
    case 'run.succeeded':
      return 'succeeded';
    case 'run.failed': {
      const e = data.error as { stepKey?: string; error?: { message?: string } } | null;
      return `failed${e?.stepKey ? ` at step ${e.stepKey}` : ''}${e?.error?.message ? `: ${oneLine(e.error.message)}` : ''}`;
    }
    case 'run.canceled':
      return `canceled${data.reason ? ` (${data.reason})` : ''}`;
    case 'run.paused':
      return `paused after step ${event.stepKey ?? '?'} exhausted its retries`;
    case 'run.resumed':
      return 'resumed';
    case 'run.waiting':
      return `waiting (every open step waits; see weft waitpoints list --run ${event.runId})`;
    case 'run.running':
      return 'running again';
    case 'waitpoint.completed':
      return 'waitpoint completed';
    case 'waitpoint.timed_out':
      return 'waitpoint timed out';
    default:
      return undefined;
  }
}

function closingLine(outcome: string | undefined, runId: string, took: string): string {
  if (outcome === 'succeeded') return `Run ${runId} succeeded in ${took}.`;
  if (outcome === 'paused')
    return `Run ${runId} is paused. Fix the step, then: weft runs resume ${runId} [--version current] && weft runs follow ${runId}`;
  if (outcome === undefined) return `Stopped following run ${runId}.`;
  return `Run ${runId} ${outcome} after ${took}. Details: weft runs show ${runId}`;
}

/** One line per transition: for logs, CI and pipes. */
class LineView implements View {
  private readonly started = new Map<string, string>();
  private lastAt: string | null = null;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly run: ApiRun,
  ) {
    out.write(`Following run ${run.id} of ${run.workflowId} (${run.status}).\n`);
  }

  apply(event: ApiRunEvent): void {
    this.lastAt = event.createdAt;
    const time = event.createdAt.slice(11, 23);
    const step = event.stepKey ? stepTransition(event) : undefined;
    if (step && event.stepKey) {
      if (event.kind === 'step.started') this.started.set(event.stepKey, event.createdAt);
      const ran = formatDuration(this.started.get(event.stepKey), event.createdAt);
      // A retry's duration is the failed attempt's, not the wait before the next one (the note's
      // "retry in"): "retrying in 43ms" read as the delay.
      const took = ['running', 'waiting', 'skipped', 'retrying'].includes(step.status)
        ? ''
        : ` in ${ran}`;
      const note =
        step.status === 'retrying' && step.note ? `attempt ran ${ran}: ${step.note}` : step.note;
      const attempt = event.attempt && event.attempt > 1 ? ` (attempt ${event.attempt})` : '';
      this.out.write(
        `${time}  ${event.stepKey}  ${step.status}${attempt}${took}${note ? `  ${note}` : ''}\n`,
      );
      return;
    }
    const line = runLine(event);
    if (line) this.out.write(`${time}  run  ${line}\n`);
  }

  close(outcome: string | undefined, runId: string): void {
    this.out.write(
      `${closingLine(outcome, runId, formatDuration(this.run.createdAt, this.lastAt))}\n`,
    );
  }
}

/** Each event as one JSON line (the API's own shape), for scripts. */
class JsonView implements View {
  constructor(private readonly out: NodeJS.WritableStream) {}
  apply(event: ApiRunEvent): void {
    this.out.write(`${JSON.stringify(event)}\n`);
  }
  close(): void {}
}

/** At a terminal: the step table, redrawn in place as steps move, running timers ticking. */
class TableView implements View {
  private readonly steps = new Map<string, StepLine>();
  private runStatus: string;
  private drawnLines = 0;
  private lastAt: string | null = null;
  private readonly ticker: NodeJS.Timeout;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly run: ApiRun,
    initial: Array<{ stepKey: string; status: string }>,
  ) {
    this.runStatus = 'queued';
    for (const s of initial)
      this.steps.set(s.stepKey, {
        key: s.stepKey,
        status: 'queued',
        attempt: null,
        startedAt: null,
        finishedAt: null,
        note: null,
      });
    this.ticker = setInterval(() => this.draw(), 200);
    this.ticker.unref();
    this.draw();
  }

  apply(event: ApiRunEvent): void {
    this.lastAt = event.createdAt;
    const step = event.stepKey ? stepTransition(event) : undefined;
    if (step && event.stepKey) {
      const line = this.steps.get(event.stepKey) ?? {
        key: event.stepKey,
        status: 'queued',
        attempt: null,
        startedAt: null,
        finishedAt: null,
        note: null,
      };
      line.status = step.status;
      line.note = step.note;
      if (event.attempt !== null) line.attempt = event.attempt;
      if (event.kind === 'step.started') {
        line.startedAt ??= event.createdAt;
        line.finishedAt = null;
      } else if (step.status !== 'waiting') line.finishedAt = event.createdAt;
      this.steps.set(event.stepKey, line);
    } else {
      const text = runLine(event);
      if (text) this.runStatus = text;
    }
    this.draw();
  }

  private draw(): void {
    const now = new Date().toISOString();
    const rows = [...this.steps.values()];
    const width = Math.max(4, ...rows.map((r) => r.key.length));
    const lines = [
      `Run ${this.run.id} of ${this.run.workflowId}: ${this.runStatus}`,
      ...rows.map((r) => {
        const took =
          r.startedAt === null
            ? ''
            : formatDuration(r.startedAt, r.finishedAt ?? (r.status === 'running' ? now : null));
        const attempt = r.attempt && r.attempt > 1 ? ` #${r.attempt}` : '';
        return `  ${symbol(r.status)} ${r.key.padEnd(width)}  ${`${r.status}${attempt}`.padEnd(12)} ${took.padStart(7)}${r.note ? `  ${r.note}` : ''}`;
      }),
    ];
    const columns = this.out.columns || 120;
    const fitted = lines.map((l) => (l.length > columns ? `${l.slice(0, columns - 1)}…` : l));
    if (this.drawnLines > 0) this.out.write(`\x1b[${this.drawnLines}A\x1b[J`);
    this.out.write(`${fitted.join('\n')}\n`);
    this.drawnLines = fitted.length;
  }

  close(outcome: string | undefined, runId: string): void {
    clearInterval(this.ticker);
    this.draw();
    this.out.write(
      `${closingLine(outcome, runId, formatDuration(this.run.createdAt, this.lastAt))}\n`,
    );
  }
}

function symbol(status: string): string {
  switch (status) {
    case 'done':
      return '✔';
    case 'failed':
      return '✖';
    case 'running':
      return '▶';
    case 'waiting':
      return '⏸';
    case 'retrying':
      return '↻';
    case 'skipped':
      return '-';
    default:
      return '·';
  }
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

function oneLine(text: string, max = 80): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
