/**
 * `weft runs cancel`, `weft runs resume` and `weft waitpoints complete`: steering runs through
 * the HTTP API (POST /api/v1/runs/{runId}/cancel, …/resume, /api/v1/waitpoints/{token}/complete).
 */
import type { ClientOptions } from './api-commands.js';
import { ApiClient, resolveConnection } from './api-client.js';
import { resolveDataDir } from './local-state.js';
import { CliError, printJson } from './output.js';

interface ApiRun {
  id: string;
  workflowId: string;
  status: string;
}

interface ApiWaitpoint {
  token: string;
  runId: string;
  stepKey: string;
  status: string;
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
