/**
 * `weft runs rerun <runId> --from <step>`: a client of `POST /api/v1/runs/{runId}/rerun`, so it
 * works the same against `weft dev` and a deployed server. Prints the plan (every step's fate and
 * reason) and, unless `--dry-run`, the new run's id.
 *
 * `weft runs rerun --failed --workflow <id> [--since <time>] [--from <step>] [--dry-run]`: bulk
 * recovery through `POST /api/v1/bulk-reruns` — the summary with `--dry-run`, else the action,
 * followed until it ends (the server goes on if the command is interrupted).
 */
import { parseDuration } from '../core/retry.js';
import { ApiClient, resolveConnection } from './api-client.js';
import { resolveDataDir } from './local-state.js';
import { CliError, formatTable, printJson } from './output.js';

export interface RerunOptions {
  url?: string;
  apiKey?: string;
  dataDir?: string;
  json?: boolean;
  from?: string;
  until?: string;
  dryRun?: boolean;
  version?: string;
  input?: string;
  /** Bulk: rerun every failed run of `workflow` (since `since`). */
  failed?: boolean;
  workflow?: string;
  /** An ISO time, or a duration back from now (`2h`, `1d`). */
  since?: string;
  /** Bulk: how often to print progress, in ms (default 1000). */
  pollMs?: number;
}

interface ApiPlan {
  fromStep: string;
  untilStep: string | null;
  versionId: string;
  nodes: Array<{
    stepId: string;
    scope: string | null;
    fate: string;
    reason: string | null;
    detail: string;
  }>;
  counts: { rerun: number; reuse: number; skip: number };
  notes: string[];
}

export async function runRunsRerun(
  runId: string | undefined,
  options: RerunOptions,
): Promise<void> {
  if (
    options.version !== undefined &&
    options.version !== 'original' &&
    options.version !== 'current'
  ) {
    throw new CliError(`--version is "${options.version}": expected "original" or "current".`);
  }
  if (options.failed) {
    if (runId !== undefined) {
      throw new CliError(
        `--failed reruns every failed run of a workflow; drop the run id ${runId}, or drop --failed to rerun that run alone.`,
      );
    }
    return runBulkRerun(options);
  }
  if (runId === undefined || options.from === undefined) {
    throw new CliError(
      'Name a run and a step (weft runs rerun <runId> --from <step>), or rerun every failed run of a workflow (weft runs rerun --failed --workflow <id>).',
    );
  }
  const body: Record<string, unknown> = { fromStep: options.from };
  if (options.until !== undefined) body.untilStep = options.until;
  if (options.version !== undefined) body.version = options.version;
  if (options.dryRun) body.dryRun = true;
  if (options.input !== undefined) {
    try {
      body.input = JSON.parse(options.input) as unknown;
    } catch (error) {
      throw new CliError(
        `--input is not JSON (${(error as Error).message}); pass e.g. --input '{"id":1}'.`,
      );
    }
  }
  const api = new ApiClient(
    resolveConnection({ ...options, dataDir: resolveDataDir(options.dataDir) }),
  );
  const { body: result } = await api.post<{ run?: { id: string; status: string }; plan: ApiPlan }>(
    `/runs/${encodeURIComponent(runId)}/rerun`,
    body,
  );
  if (options.json) {
    printJson(result);
    return;
  }
  const { plan } = result;
  process.stdout.write(
    formatTable(
      ['STEP', 'FATE', 'REASON', 'DETAIL'],
      plan.nodes.map((n) => [
        n.scope === null ? n.stepId : `  ${n.stepId}`,
        n.fate,
        n.reason ?? '',
        n.detail,
      ]),
    ) + '\n',
  );
  for (const note of plan.notes) process.stdout.write(`note: ${note}\n`);
  const { rerun, reuse, skip } = plan.counts;
  const summary = `${rerun} to rerun, ${reuse} reused, ${skip} skipped`;
  if (result.run) {
    process.stdout.write(
      `Started run ${result.run.id} (rerun of ${runId} from ${plan.fromStep}): ${summary}.\n`,
    );
    process.stdout.write(`Follow it with: weft runs show ${result.run.id}\n`);
  } else {
    process.stdout.write(`Dry run: ${summary}; nothing was started.\n`);
  }
}

/** `--since 2h` (back from now) or an ISO time → an ISO time; a clear error otherwise. */
export function parseSince(value: string, now = Date.now()): string {
  if (/^\d+(\.\d+)?(ms|s|m|h|d)$/.test(value)) {
    return new Date(now - parseDuration(value as `${number}h`, '--since')).toISOString();
  }
  const t = Date.parse(value);
  if (Number.isNaN(t) || !/^\d{4}-\d\d-\d\d/.test(value)) {
    throw new CliError(
      `--since is "${value}": expected a time (2025-01-31T09:00:00Z) or a duration back from now (30m, 2h, 1d).`,
    );
  }
  return new Date(t).toISOString();
}

interface BulkSummary {
  runs: number;
  planned: number;
  steps: Array<{ stepId: string; rerun: number; reuse: number; skip: number }>;
  fromSteps: Array<{ fromStep: string; runs: number }>;
  problems: Array<{ runId: string; code: string; message: string }>;
}

interface BulkProgress {
  id: string;
  status: 'running' | 'succeeded' | 'failed';
  total: number;
  done: number;
  failed: number;
  runIds: string[];
  items: Array<{
    sourceRunId: string;
    status: string;
    rerunId: string | null;
    error: { message: string } | null;
  }>;
}

async function runBulkRerun(options: RerunOptions): Promise<void> {
  if (!options.workflow) {
    throw new CliError('--failed needs --workflow <id>: the workflow whose failed runs to rerun.');
  }
  if (options.until !== undefined || options.input !== undefined) {
    throw new CliError(
      '--until and --input apply to one run; a bulk rerun takes --from, --since, --version, --dry-run.',
    );
  }
  const filter: Record<string, unknown> = { workflowId: options.workflow, status: ['failed'] };
  if (options.since !== undefined) filter.createdFrom = parseSince(options.since);
  const body: Record<string, unknown> = { filter };
  if (options.from !== undefined) body.fromStep = options.from;
  if (options.version !== undefined) body.version = options.version;
  if (options.dryRun) body.dryRun = true;
  const api = new ApiClient(
    resolveConnection({ ...options, dataDir: resolveDataDir(options.dataDir) }),
  );
  const out = (line: string) => process.stdout.write(line + '\n');
  if (options.dryRun) {
    const { body: result } = await api.post<{ summary: BulkSummary }>('/bulk-reruns', body);
    if (options.json) return printJson(result);
    const { summary } = result;
    out(
      formatTable(
        ['STEP', 'RERUN', 'REUSE', 'SKIP'],
        summary.steps.map((st) => [st.stepId, String(st.rerun), String(st.reuse), String(st.skip)]),
      ),
    );
    for (const p of summary.problems) out(`cannot rerun ${p.runId}: ${p.message}`);
    const from = summary.fromSteps.map((x) => `${x.fromStep} (${x.runs})`).join(', ');
    out(
      `Dry run: ${summary.runs} failed run${summary.runs === 1 ? '' : 's'} of ${options.workflow}` +
        `${summary.planned < summary.runs ? ` (the first ${summary.planned} planned)` : ''}` +
        `${from ? `, rerun from ${from}` : ''}; nothing was started.`,
    );
    return;
  }
  const { body: started } = await api.post<BulkProgress>('/bulk-reruns', body);
  if (!options.json) out(`Bulk rerun ${started.id}: ${started.total} runs of ${options.workflow}.`);
  let progress = started;
  let last = '';
  while (progress.status === 'running') {
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
    progress = await api.get<BulkProgress>(`/bulk-reruns/${encodeURIComponent(started.id)}`);
    const line = `${progress.done + progress.failed}/${progress.total} handled (${progress.done} rerun, ${progress.failed} could not be)`;
    if (line !== last && !options.json) out(line);
    last = line;
  }
  if (options.json) return printJson(progress);
  for (const item of progress.items) {
    if (item.status === 'failed')
      out(`cannot rerun ${item.sourceRunId}: ${item.error?.message ?? ''}`);
  }
  out(
    `Bulk rerun ${progress.id} ${progress.status}: ${progress.done} of ${progress.total} runs rerun` +
      `${progress.failed ? `, ${progress.failed} could not be` : ''}. The reruns: weft runs list --workflow ${options.workflow}`,
  );
  if (progress.status === 'failed') process.exitCode = 1;
}
