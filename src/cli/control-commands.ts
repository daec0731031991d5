/**
 * `weft runs cancel`, `weft runs resume`, `weft waitpoints list` and `weft waitpoints complete`:
 * steering runs through the HTTP API (POST /api/v1/runs/{runId}/cancel, …/resume,
 * GET /api/v1/runs/{runId}/waitpoints, POST /api/v1/waitpoints/{token}/complete).
 */
import type { ClientOptions } from './api-commands.js';
import { ApiClient, resolveConnection } from './api-client.js';
import { resolveDataDir } from './local-state.js';
import { CliError, formatTable, formatTime, printJson } from './output.js';

interface ApiRun {
  id: string;
  workflowId: string;
  status: string;
}

export interface ApiWaitpoint {
  token: string;
  runId: string;
  stepKey: string;
  kind?: string;
  status: string;
  resumeAt?: string | null;
  childRunId?: string | null;
  createdAt?: string;
}

/** The command that completes an approval, as printed next to it (`weft runs show`, `list`). */
export function completeCommand(token: string): string {
  return `weft waitpoints complete ${token} --payload '{…}'`;
}

/** What a waiting waitpoint waits for, in a few words. */
export function waitsFor(w: ApiWaitpoint): string {
  if (w.kind === 'approval') return completeCommand(w.token);
  if (w.kind === 'sleep') return `until ${formatTime(w.resumeAt)} UTC`;
  if (w.kind === 'child_run') return `child run ${w.childRunId ?? '?'}`;
  return '-';
}

function client(options: ClientOptions): ApiClient {
  return new ApiClient(resolveConnection({ ...options, dataDir: resolveDataDir(options.dataDir) }));
}

export async function runRunsCancel(runId: string, options: ClientOptions): Promise<void> {
  const { body: run } = await client(options).post<ApiRun>(
    `/runs/${encodeURIComponent(runId)}/cancel`,
    {},
  );
  if (options.json) printJson(run);
  else
    process.stdout.write(`Canceled run ${run.id} of ${run.workflowId} (status ${run.status}).\n`);
}

export interface ResumeOptions extends ClientOptions {
  version?: string;
}

export async function runRunsResume(runId: string, options: ResumeOptions): Promise<void> {
  const version = options.version;
  if (version !== undefined && version !== 'original' && version !== 'current')
    throw new CliError(
      `--version must be "original" (the version the run started on) or "current" (the workflow's current version, after a fix); found "${version}".`,
    );
  const { body: run } = await client(options).post<ApiRun>(
    `/runs/${encodeURIComponent(runId)}/resume`,
    version === undefined ? {} : { version },
  );
  if (options.json) printJson(run);
  else
    process.stdout.write(
      `Resumed run ${run.id} of ${run.workflowId}${version === 'current' ? ' on the current version' : ''} (status ${run.status}). Follow it with: weft runs follow ${run.id}\n`,
    );
}

export interface CompleteOptions extends ClientOptions {
  payload?: string;
}

export async function runWaitpointsComplete(
  token: string,
  options: CompleteOptions,
): Promise<void> {
  let payload: unknown = null;
  if (options.payload !== undefined) {
    try {
      payload = JSON.parse(options.payload);
    } catch (error) {
      throw new CliError(
        `--payload is not valid JSON (${(error as Error).message}). Quote it for your shell, e.g. --payload '{"approved":true}'.`,
      );
    }
  }
  const { body: waitpoint } = await client(options).post<ApiWaitpoint>(
    `/waitpoints/${encodeURIComponent(token)}/complete`,
    { payload },
  );
  if (options.json) printJson(waitpoint);
  else
    process.stdout.write(
      `Completed waitpoint ${waitpoint.token} (step ${waitpoint.stepKey} of run ${waitpoint.runId}); the run goes on.\n`,
    );
}

export interface WaitpointsListOptions extends ClientOptions {
  run?: string;
  all?: boolean;
}

/**
 * The waitpoints of one run (`--run`), or the waiting ones of every waiting run of the
 * environment (`GET /runs?status=waiting`, newest 100 runs). `--all` also lists completed ones.
 */
export async function runWaitpointsList(options: WaitpointsListOptions): Promise<void> {
  const api = client(options);
  const runIds = options.run
    ? [options.run]
    : (await api.get<{ data: ApiRun[] }>('/runs', { status: 'waiting', limit: 100 })).data.map(
        (r) => r.id,
      );
  const lists = await Promise.all(
    runIds.map(
      async (id) =>
        (await api.get<{ data: ApiWaitpoint[] }>(`/runs/${encodeURIComponent(id)}/waitpoints`))
          .data,
    ),
  );
  const waitpoints = lists.flat().filter((w) => options.all || w.status === 'waiting');
  if (options.json) {
    printJson({ data: waitpoints });
    return;
  }
  if (waitpoints.length === 0) {
    process.stdout.write(
      options.run
        ? `Run ${options.run} has no ${options.all ? '' : 'waiting '}waitpoint.\n`
        : 'No run is waiting on a waitpoint.\n',
    );
    return;
  }
  const rows = waitpoints.map((w) => [
    w.token,
    w.kind,
    w.runId,
    w.stepKey,
    w.status,
    formatTime(w.createdAt),
    w.status === 'waiting' ? waitsFor(w) : null,
  ]);
  process.stdout.write(
    `${formatTable(['token', 'kind', 'run', 'step', 'status', 'since (UTC)', 'waits for'], rows)}\n`,
  );
}
