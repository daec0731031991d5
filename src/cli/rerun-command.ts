/**
 * `weft runs rerun <runId> --from <step>`: a client of `POST /api/v1/runs/{runId}/rerun`, so it
 * works the same against `weft dev` and a deployed server. Prints the plan (every step's fate and
 * reason) and, unless `--dry-run`, the new run's id.
 */
import { ApiClient, resolveConnection } from './api-client.js';
import { resolveDataDir } from './local-state.js';
import { CliError, formatTable, printJson } from './output.js';

export interface RerunOptions {
  url?: string;
  apiKey?: string;
  dataDir?: string;
  json?: boolean;
  from: string;
  until?: string;
  dryRun?: boolean;
  version?: string;
  input?: string;
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

export async function runRunsRerun(runId: string, options: RerunOptions): Promise<void> {
  if (
    options.version !== undefined &&
    options.version !== 'original' &&
    options.version !== 'current'
  ) {
    throw new CliError(`--version is "${options.version}": expected "original" or "current".`);
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
