/**
 * `weft trigger` and `weft runs`: clients of the HTTP API, so they work the same against
 * `weft dev` and a deployed server. Tables for people, `--json` for scripts (the API's own
 * shapes, unchanged).
 */
import { readFileSync } from 'node:fs';
import { parseDuration } from '../core/retry.js';
import { ENDED_RUN_STATUSES } from '../core/statuses.js';
import { ApiClient, resolveConnection } from './api-client.js';
import { resolveDataDir } from './local-state.js';
import { CliError, formatDuration, formatTable, formatTime, printJson } from './output.js';
import { waitsFor, type ApiWaitpoint } from './control-commands.js';

export interface ClientOptions {
  url?: string;
  apiKey?: string;
  dataDir?: string;
  json?: boolean;
}

/** The fields of the API's run the CLI shows (the API has more; `--json` prints them all). */
interface ApiRun {
  id: string;
  workflowId: string;
  status: string;
  trigger?: { kind: string; ref: string | null };
  idempotencyKey?: string | null;
  finalDataclipId?: string | null;
  error?: {
    stepKey?: string;
    name?: string;
    message?: string;
    error?: { name?: string; message?: string };
  } | null;
  createdAt: string;
  startedAt?: string | null;
  finishedAt?: string | null;
  deduplicated?: boolean;
}

interface ApiStepRun {
  stepKey: string;
  status: string;
  attemptCount: number;
  maxAttempts: number;
  outputDataclipId: string | null;
  reusedFrom?: string | null;
  error: { name?: string; message?: string } | null;
  startedAt: string | null;
  finishedAt: string | null;
}

interface ApiDataclip {
  id: string;
  body: unknown;
  wipedAt: string | null;
}

/** Where following a run stops: it ended (src/core/statuses.ts) or paused. */
const FINISHED = new Set<string>([...ENDED_RUN_STATUSES, 'paused']);

function client(options: ClientOptions): ApiClient {
  return new ApiClient(resolveConnection({ ...options, dataDir: resolveDataDir(options.dataDir) }));
}

export interface TriggerOptions extends ClientOptions {
  input?: string;
  /** A file of inputs, one run each: JSON Lines, or one JSON array (- for stdin). */
  batch?: string;
  inputFile?: string;
  idempotencyKey?: string;
  wait?: boolean;
  timeout: string;
}

/**
 * POST the trigger for `weft trigger` (with or without --follow): input from --input or
 * --input-file, and the idempotency key. Returns the HTTP status (200: deduplicated) and the run.
 */
export async function startRun<R>(
  api: ApiClient,
  workflowId: string,
  options: TriggerOptions,
): Promise<{ status: number; body: R }> {
  const input = readInput(options);
  const body: { input?: unknown; idempotencyKey?: string; source: 'cli' } = { source: 'cli' };
  if (input !== undefined) body.input = input;
  if (options.idempotencyKey !== undefined) body.idempotencyKey = options.idempotencyKey;
  return api.post<R>(`/workflows/${encodeURIComponent(workflowId)}/runs`, body);
}

export async function runTrigger(workflowId: string, options: TriggerOptions): Promise<void> {
  const api = client(options);
  const { status, body: run } = await startRun<ApiRun>(api, workflowId, options);
  const deduplicated = status === 200 || run.deduplicated === true;
  if (!options.wait) {
    if (options.json) printJson(run);
    else {
      process.stdout.write(
        deduplicated
          ? `Run ${run.id} already exists for idempotency key "${options.idempotencyKey}" (status ${run.status}); no new run started.\n`
          : `Started run ${run.id} of ${run.workflowId} (status ${run.status}).\n`,
      );
      process.stdout.write(`Follow it with: weft runs show ${run.id}\n`);
    }
    return;
  }
  const timeoutMs = parseDuration(options.timeout as `${number}s`, '--timeout');
  if (!options.json)
    process.stdout.write(
      `${deduplicated ? 'Existing' : 'Started'} run ${run.id} of ${run.workflowId}; waiting for it to finish…\n`,
    );
  const done = await waitForRun(api, run.id, timeoutMs);
  const output = done.finalDataclipId
    ? await api.get<ApiDataclip>(`/dataclips/${encodeURIComponent(done.finalDataclipId)}`)
    : undefined;
  if (options.json) printJson({ ...done, output: output?.body ?? null });
  else {
    // a paused run has not finished (no finishedAt): it waits for `weft runs resume`
    process.stdout.write(
      done.finishedAt
        ? `Run ${done.id} ${done.status} in ${formatDuration(done.createdAt, done.finishedAt)}.\n`
        : `Run ${done.id} ${done.status}; resume it with \`weft runs resume ${done.id}\`.\n`,
    );
    if (output) process.stdout.write(`Output:\n${indent(JSON.stringify(output.body, null, 2))}\n`);
    if (done.error) process.stdout.write(`Error: ${describeRunError(done.error)}\n`);
  }
  if (done.status !== 'succeeded') process.exitCode = 1;
}

/** Items per batch request: the API's limit (MAX_TRIGGER_BATCH in src/server/schemas.ts). */
const BATCH_ITEMS = 500;

interface BatchResult {
  index: number;
  status: number;
  run?: ApiRun;
  error?: { code: string; message: string };
}

/**
 * `weft trigger <workflow> --batch <file>`: one run per input of the file, sent 500 at a time to
 * POST /workflows/{id}/runs/batch. Each input is settled on its own: the summary names every one
 * the server refused (by its line, or its position in the array) and why; exit 1 if any was.
 */
export async function runTriggerBatch(workflowId: string, options: TriggerOptions): Promise<void> {
  const conflicting = [
    options.input !== undefined && '--input',
    options.inputFile !== undefined && '--input-file',
    options.idempotencyKey !== undefined && '--idempotency-key',
    options.wait && '--wait',
  ].filter(Boolean);
  if (conflicting.length > 0)
    throw new CliError(
      `--batch reads every input from its file; drop ${conflicting.join(', ')} (one run: weft trigger ${workflowId} --input '{…}').`,
    );
  const { inputs, where } = readBatch(options.batch!);
  const api = client(options);
  const results: BatchResult[] = [];
  for (let from = 0; from < inputs.length; from += BATCH_ITEMS) {
    const items = inputs.slice(from, from + BATCH_ITEMS).map((input) => ({ input }));
    const { body } = await api.post<{ data: BatchResult[] }>(
      `/workflows/${encodeURIComponent(workflowId)}/runs/batch`,
      { items, source: 'cli' },
    );
    results.push(...body.data.map((r) => ({ ...r, index: r.index + from })));
  }
  const refused = results.filter((r) => r.error);
  if (refused.length > 0) process.exitCode = 1;
  if (options.json) {
    printJson(results);
    return;
  }
  const started = results.length - refused.length;
  process.stdout.write(
    `Started ${started} run${started === 1 ? '' : 's'} of ${workflowId}${refused.length > 0 ? `; ${refused.length} input${refused.length === 1 ? '' : 's'} refused` : ''}.\n`,
  );
  for (const r of refused) process.stdout.write(`  ${where(r.index)}: ${r.error!.message}\n`);
  if (started > 0)
    process.stdout.write(`List them with: weft runs list --workflow ${workflowId}\n`);
}

/**
 * The inputs of a --batch file: one JSON array, or JSON Lines (blank lines skipped). `where`
 * names an input by its line (JSON Lines) or its position (an array), for the summary.
 */
function readBatch(file: string): { inputs: unknown[]; where: (index: number) => string } {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (error) {
    throw new CliError(
      `--batch ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`,
    );
  }
  if (text.trimStart().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new CliError(
        `--batch ${file} starts with "[" but is not a JSON array (${(error as Error).message}).`,
      );
    }
    const inputs = parsed as unknown[];
    if (inputs.length === 0)
      throw new CliError(`--batch ${file} is an empty array: no run to start.`);
    return { inputs, where: (i) => `item ${i}` };
  }
  const inputs: unknown[] = [];
  const lines: number[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      inputs.push(JSON.parse(line));
    } catch (error) {
      throw new CliError(
        `--batch ${file}, line ${i + 1} is not valid JSON (${(error as Error).message}); each line is one run's input (JSON Lines), or the file is one JSON array. Nothing was started.`,
      );
    }
    lines.push(i + 1);
  });
  if (inputs.length === 0) throw new CliError(`--batch ${file} holds no input: no run to start.`);
  return { inputs, where: (i) => `line ${lines[i]}` };
}

function readInput(options: TriggerOptions): unknown {
  if (options.input !== undefined && options.inputFile !== undefined)
    throw new CliError('pass --input or --input-file, not both.');
  let text: string;
  let from: string;
  if (options.input !== undefined) {
    text = options.input;
    from = '--input';
  } else if (options.inputFile !== undefined) {
    from = `--input-file ${options.inputFile}`;
    try {
      text = readFileSync(options.inputFile === '-' ? 0 : options.inputFile, 'utf8');
    } catch (error) {
      throw new CliError(
        `${from}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`,
      );
    }
  } else return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CliError(
      `${from} is not valid JSON (${(error as Error).message}). Quote it for your shell, e.g. --input '{"name":"Ada"}'.`,
    );
  }
}

async function waitForRun(api: ApiClient, runId: string, timeoutMs: number): Promise<ApiRun> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  for (;;) {
    const run = await api.get<ApiRun>(`/runs/${encodeURIComponent(runId)}`);
    if (FINISHED.has(run.status)) return run;
    if (Date.now() + delay > deadline) {
      throw new CliError(
        `run ${runId} is still ${run.status} after ${timeoutMs} ms; it goes on in the background. Check it later with: weft runs show ${runId}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(1000, delay * 1.5);
  }
}

export interface ListOptions extends ClientOptions {
  workflow?: string;
  status?: string[];
  limit?: string;
  cursor?: string;
}

export async function runRunsList(options: ListOptions): Promise<void> {
  const api = client(options);
  const query = new URLSearchParams();
  if (options.workflow) query.set('workflowId', options.workflow);
  for (const s of options.status ?? []) query.append('status', s);
  if (options.limit) query.set('limit', options.limit);
  if (options.cursor) query.set('cursor', options.cursor);
  const qs = query.toString();
  const page = await api.get<{ data: ApiRun[]; nextCursor: string | null }>(
    `/runs${qs ? `?${qs}` : ''}`,
  );
  if (options.json) {
    printJson(page);
    return;
  }
  if (page.data.length === 0) {
    process.stdout.write("No runs match. Start one with: weft trigger <workflow> --input '{…}'\n");
    return;
  }
  const rows = page.data.map((r) => [
    r.id,
    r.workflowId,
    r.status,
    r.trigger?.kind,
    formatTime(r.createdAt),
    formatDuration(r.startedAt ?? r.createdAt, r.finishedAt),
  ]);
  process.stdout.write(
    `${formatTable(['run', 'workflow', 'status', 'trigger', 'created (UTC)', 'took'], rows)}\n`,
  );
  if (page.nextCursor)
    process.stdout.write(
      `\nMore runs: weft runs list --cursor ${page.nextCursor}${options.limit ? ` --limit ${options.limit}` : ''}\n`,
    );
}

export async function runRunsShow(runId: string, options: ClientOptions): Promise<void> {
  const api = client(options);
  const id = encodeURIComponent(runId);
  const [run, stepsBody] = await Promise.all([
    api.get<ApiRun>(`/runs/${id}`),
    api.get<ApiStepRun[] | { data: ApiStepRun[] }>(`/runs/${id}/steps`),
  ]);
  const steps = Array.isArray(stepsBody) ? stepsBody : stepsBody.data;
  const waiting = (await api.get<{ data: ApiWaitpoint[] }>(`/runs/${id}/waitpoints`)).data.filter(
    (w) => w.status === 'waiting',
  );
  const output = run.finalDataclipId
    ? await api.get<ApiDataclip>(`/dataclips/${encodeURIComponent(run.finalDataclipId)}`)
    : undefined;
  if (options.json) {
    printJson({ run, steps, waitpoints: waiting, output: output ? output.body : null });
    return;
  }
  const lines = [
    `Run       ${run.id}`,
    `Workflow  ${run.workflowId}`,
    `Status    ${run.status}`,
    `Trigger   ${run.trigger?.kind ?? '-'}${run.idempotencyKey ? ` (idempotency key "${run.idempotencyKey}")` : ''}`,
    `Created   ${formatTime(run.createdAt)} UTC`,
    `Finished  ${formatTime(run.finishedAt)}${run.finishedAt ? ` UTC (took ${formatDuration(run.startedAt ?? run.createdAt, run.finishedAt)})` : ''}`,
  ];
  if (run.error) lines.push(`Error     ${describeRunError(run.error)}`);
  lines.push(
    '',
    formatTable(
      ['step', 'status', 'attempts', 'took', 'error'],
      steps.map((s) => [
        s.stepKey,
        s.reusedFrom ? `${s.status} (reused)` : s.status,
        // control steps (approval, sleep, loops…) have no attempt budget: no "/2147483647"
        s.maxAttempts >= CONTROL_MAX_ATTEMPTS
          ? `${s.attemptCount}`
          : `${s.attemptCount}/${s.maxAttempts}`,
        formatDuration(s.startedAt, s.finishedAt),
        s.error ? oneLine(`${s.error.name ?? 'Error'}: ${s.error.message ?? ''}`) : null,
      ]),
    ),
  );
  if (waiting.length > 0) {
    lines.push('', 'Waiting on');
    for (const w of waiting) lines.push(`  ${w.stepKey} (${w.kind ?? '?'}): ${waitsFor(w)}`);
  }
  if (output) {
    lines.push(
      '',
      output.wipedAt
        ? 'Output    (not stored: dataclips are off for this project)'
        : `Output\n${indent(JSON.stringify(output.body, null, 2))}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

function describeRunError(error: NonNullable<ApiRun['error']>): string {
  // the flat fields (current servers), else the nested error (older ones)
  const e = error.message !== undefined ? error : error.error;
  return `${error.stepKey ? `step ${error.stepKey}: ` : ''}${e ? `${e.name ?? 'Error'}: ${e.message ?? ''}` : JSON.stringify(error)}`;
}

/** A control step's attempt budget (PostgreSQL's largest integer: "unbounded"). */
const CONTROL_MAX_ATTEMPTS = 2_147_483_647;

function oneLine(text: string, max = 80): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}
