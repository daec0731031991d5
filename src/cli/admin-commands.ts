/**
 * `weft keys`, `weft environments`, `weft projects`: operations that work while servers run.
 *
 * Where they go: the API of a reachable server first (`--url`, else `WEFT_URL`, else the
 * `dev.json` that `weft dev` writes), with an admin key (`--api-key`, `WEFT_API_KEY`, or the key
 * of `weft dev`), so revoking a leaked key needs no downtime and takes effect at once on every
 * server process. Only when no server answers do they work on the database (`--database-url` /
 * `DATABASE_URL`, else the dev folder) — how the first admin key of an install is made.
 * `--database-url` goes to the database directly.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KEY_SCOPES, type KeyScope } from '../store/control-store.js';
import { ApiClient, type ApiConnection } from './api-client.js';
import {
  withDatabase,
  type CreatedKeyView,
  type DatabaseOperations,
  type DeletedView,
  type EnvironmentView,
  type KeyView,
  type ProjectView,
} from './db-commands.js';
import { databaseDir, displayPath, readDevState, resolveDataDir } from './local-state.js';
import { CliError, formatTable, formatTime, printJson } from './output.js';

export interface OperationsOptions {
  url?: string;
  apiKey?: string;
  databaseUrl?: string;
  dataDir?: string;
  /** Database only: the project (with the API, the key's project). Default `default`. */
  project?: string;
  json?: boolean;
}

type Operations = Pick<
  DatabaseOperations,
  | 'createKey'
  | 'listKeys'
  | 'revokeKey'
  | 'listEnvironments'
  | 'createEnvironment'
  | 'setEnvironmentPaused'
  | 'deleteEnvironment'
  | 'deleteProject'
  | 'listProjects'
  | 'createProject'
  | 'updateProject'
> & { where: string };

/** The same verbs over the HTTP API; the project is the admin key's own. */
class ApiOperations implements Operations {
  readonly where: string;
  constructor(private readonly client: ApiClient) {
    this.where = `the Weft API at ${client.connection.url}`;
  }
  async createKey(args: { environment?: string; label?: string; scopes: KeyScope[] }) {
    // The project is the admin key's own: `--project` applies to the database only.
    const body: Record<string, unknown> = { scopes: args.scopes };
    if (args.environment !== undefined) body.environment = args.environment;
    if (args.label !== undefined) body.label = args.label;
    return (await this.client.post<CreatedKeyView>('/keys', body)).body;
  }
  async listKeys(args: { environment?: string }) {
    return (await this.client.get<{ data: KeyView[] }>('/keys', { environment: args.environment }))
      .data;
  }
  async revokeKey(args: { keyId: string }) {
    await this.client.post(`/keys/${encodeURIComponent(args.keyId)}/revoke`, {});
  }
  async listEnvironments() {
    return (await this.client.get<{ data: EnvironmentView[] }>('/environments')).data;
  }
  async createEnvironment(args: { name: string }) {
    return (await this.client.post<EnvironmentView>('/environments', { name: args.name })).body;
  }
  async setEnvironmentPaused(args: { name: string; paused: boolean }) {
    return (
      await this.client.patch<EnvironmentView>(`/environments/${encodeURIComponent(args.name)}`, {
        paused: args.paused,
      })
    ).body;
  }
  async deleteEnvironment(args: { name: string }) {
    return (await this.client.delete(`/environments/${encodeURIComponent(args.name)}`))
      .body as DeletedView;
  }
  async deleteProject(args: { name: string }) {
    return (await this.client.delete(`/projects/${encodeURIComponent(args.name)}`))
      .body as DeletedView;
  }
  async listProjects() {
    return (await this.client.get<{ data: ProjectView[] }>('/projects')).data;
  }
  async createProject(args: {
    name: string;
    environment?: string;
    saveDataclips?: boolean;
    retentionDays?: number | null;
  }) {
    return (
      await this.client.post<{
        project: ProjectView;
        environment: EnvironmentView;
        key: CreatedKeyView;
      }>('/projects', args)
    ).body;
  }
  async updateProject(args: {
    name: string;
    saveDataclips?: boolean;
    retentionDays?: number | null;
    paused?: boolean;
  }) {
    const { name, ...settings } = args;
    return (await this.client.patch<ProjectView>(`/projects/${encodeURIComponent(name)}`, settings))
      .body;
  }
}

/** Any HTTP answer from `<url>/healthz` means a server is there (its status is not our concern). */
async function probe(url: string): Promise<string | undefined> {
  try {
    await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
    return undefined;
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return (error as Error).name === 'TimeoutError'
      ? 'no answer in 2 s'
      : (cause?.code ?? (error as Error).message);
  }
}

const BOTH_WAYS =
  'Either reach a server — start `weft dev` here, or pass --url (WEFT_URL) with an admin key in --api-key (WEFT_API_KEY) — or work on the database: set DATABASE_URL (or --database-url), or run this in the folder of `weft dev` (--data-dir) while it is stopped.';

/** Run `fn` against a reachable server's API, else against the database; see the file comment. */
export async function withOperations<T>(
  options: OperationsOptions,
  fn: (ops: Operations, via: 'api' | 'database') => Promise<T>,
): Promise<T> {
  if (options.databaseUrl !== undefined) return withDatabase(options, (ops) => fn(ops, 'database'));
  const dataDir = resolveDataDir(options.dataDir);
  const dev = readDevState(dataDir);
  const url = (options.url ?? process.env.WEFT_URL ?? dev?.url)?.replace(/\/+$/, '');
  const from = options.url
    ? '--url'
    : process.env.WEFT_URL
      ? 'WEFT_URL'
      : displayPath(join(dataDir, 'dev.json'));
  let unreachable: string | undefined;
  if (url !== undefined) {
    const reason = await probe(url);
    if (reason === undefined) {
      const apiKey =
        options.apiKey ??
        process.env.WEFT_API_KEY ??
        (dev && dev.url.replace(/\/+$/, '') === url ? dev.apiKey : undefined);
      if (!apiKey)
        throw new CliError(
          `the Weft server at ${url} (${from}) is reachable but no API key was given: pass an admin key with --api-key or WEFT_API_KEY.`,
        );
      const connection: ApiConnection = {
        url,
        apiKey,
        from,
        keyFrom: options.apiKey ? '--api-key' : process.env.WEFT_API_KEY ? 'WEFT_API_KEY' : from,
      };
      const api = new ApiOperations(new ApiClient(connection, 15_000));
      if (options.project !== undefined) {
        // Over the API the project is the key's: a different --project would be quietly ignored.
        const own = (await api.listProjects()).find((p) => p.current)?.name;
        if (own !== options.project)
          throw new CliError(
            `--project ${options.project}: the API key from ${connection.keyFrom} belongs to project "${own ?? '?'}", and over the API a key manages only its own project. Use an admin key of "${options.project}" (--api-key), or drop --project.`,
          );
      }
      return fn(api, 'api');
    }
    unreachable = `no Weft server answers at ${url} (${from}: ${reason})`;
    // The server was asked for by name: do not quietly change something else instead.
    if (options.url !== undefined) throw new CliError(`${unreachable}. ${BOTH_WAYS}`);
  }
  if (!process.env.DATABASE_URL && !existsSync(databaseDir(dataDir))) {
    throw new CliError(
      `${unreachable ?? 'no Weft server is configured (no --url, WEFT_URL or dev.json)'}, and there is no database: DATABASE_URL is not set and ${displayPath(databaseDir(dataDir))} does not exist. ${BOTH_WAYS}`,
    );
  }
  try {
    return await withDatabase(options, (ops) => fn(ops, 'database'));
  } catch (error) {
    if (error instanceof CliError && unreachable === undefined) throw error;
    if (error instanceof CliError && !/in use by|cannot reach|ECONNREFUSED/.test(error.message))
      throw error;
    throw new CliError(
      `${unreachable ?? 'no Weft server is configured'}, and the database did not open either: ${(error as Error).message} ${BOTH_WAYS}`,
    );
  }
}

const projectArg = (options: OperationsOptions): { project?: string } =>
  options.project === undefined ? {} : { project: options.project };

// ── keys ──────────────────────────────────────────────────────────────────────────────────────

export function parseScopes(values: readonly string[] | undefined): KeyScope[] {
  const scopes = values?.length ? values : ['trigger'];
  for (const s of scopes)
    if (!KEY_SCOPES.includes(s as KeyScope))
      throw new CliError(
        `--scope must be one of ${KEY_SCOPES.join(', ')} (repeatable); found "${s}".`,
      );
  return [...new Set(scopes)] as KeyScope[];
}

export async function runKeysCreate(
  options: OperationsOptions & { environment?: string; label?: string; scope?: string[] },
): Promise<void> {
  const scopes = parseScopes(options.scope);
  await withOperations(options, async (ops, via) => {
    // Omitted: the key's own environment (API) or `default/dev` (database).
    const args: Parameters<Operations['createKey']>[0] = { scopes };
    if (options.project !== undefined) args.project = options.project;
    if (options.environment !== undefined) args.environment = options.environment;
    if (options.label !== undefined) args.label = options.label;
    const key = await ops.createKey(args);
    if (options.json) {
      // `token`: the name this output used before the API existed.
      printJson({ ...key, token: key.key, via });
      return;
    }
    process.stdout.write(
      [
        `Created API key ${key.id} (${key.scopes.join(', ')}) for environment ${key.environment} through ${ops.where}${key.label ? ` (label "${key.label}")` : ''}.`,
        '',
        `  ${key.key}`,
        '',
        'It is shown only this once (only its hash is stored). Use it as `Authorization: Bearer <key>`, or WEFT_API_KEY for the weft CLI.',
        `Revoke it with: weft keys revoke ${key.id}`,
        '',
      ].join('\n'),
    );
  });
}

export async function runKeysList(
  options: OperationsOptions & { environment?: string },
): Promise<void> {
  await withOperations(options, async (ops) => {
    const args: Parameters<Operations['listKeys']>[0] = {};
    if (options.project !== undefined) args.project = options.project;
    if (options.environment !== undefined) args.environment = options.environment;
    const keys = await ops.listKeys(args);
    if (options.json) return printJson({ data: keys });
    if (keys.length === 0)
      return void process.stdout.write(
        `No API keys (${ops.where}). Create one with \`weft keys create\`.\n`,
      );
    process.stdout.write(
      `${formatTable(
        ['id', 'prefix', 'scopes', 'environment', 'label', 'created', 'revoked'],
        keys.map((k) => [
          k.id,
          `${k.prefix}…`,
          k.scopes.join(','),
          k.environment,
          k.label,
          formatTime(k.createdAt),
          formatTime(k.revokedAt),
        ]),
      )}\n`,
    );
  });
}

export async function runKeysRevoke(keyId: string, options: OperationsOptions): Promise<void> {
  await withOperations(options, async (ops, via) => {
    await ops.revokeKey({ keyId });
    if (options.json) return printJson({ id: keyId, revoked: true, via });
    process.stdout.write(
      via === 'api'
        ? `Revoked API key ${keyId} through ${ops.where}: every server process refuses it from its next request.\n`
        : `Revoked API key ${keyId} in ${ops.where}. Servers on this database refuse it from their next request (at most 5 s later if they missed the notification).\n`,
    );
  });
}

// ── environments ──────────────────────────────────────────────────────────────────────────────

function printEnvironments(envs: readonly EnvironmentView[]): void {
  process.stdout.write(
    `${formatTable(
      ['name', 'id', 'state', 'created'],
      envs.map((e) => [
        `${e.name}${e.current ? ' *' : ''}`,
        e.id,
        e.paused ? 'paused' : e.projectPaused ? 'paused (project)' : 'active',
        formatTime(e.createdAt),
      ]),
    )}\n`,
  );
}

export async function runEnvironmentsList(options: OperationsOptions): Promise<void> {
  await withOperations(options, async (ops) => {
    const envs = await ops.listEnvironments(projectArg(options));
    if (options.json) return printJson({ data: envs });
    printEnvironments(envs);
  });
}

export async function runEnvironmentsCreate(
  name: string,
  options: OperationsOptions,
): Promise<void> {
  await withOperations(options, async (ops) => {
    const env = await ops.createEnvironment({ ...projectArg(options), name });
    if (options.json) return printJson(env);
    process.stdout.write(
      `Created environment ${env.name} (${env.id}) through ${ops.where}.\nServe it with \`weft worker --environment ${env.name}\` (or \`weft dev --environment ${env.name}\`); make a key with \`weft keys create --environment ${env.name}\`.\n`,
    );
  });
}

export async function runEnvironmentsPause(
  name: string,
  paused: boolean,
  options: OperationsOptions,
): Promise<void> {
  await withOperations(options, async (ops) => {
    const env = await ops.setEnvironmentPaused({ ...projectArg(options), name, paused });
    if (options.json) return printJson(env);
    process.stdout.write(
      paused
        ? `Paused environment ${env.name}: triggers get 409 environment_paused and its workers claim nothing; steps already executing finish. Resume with \`weft environments resume ${env.name}\`.\n`
        : `Resumed environment ${env.name}${env.projectPaused ? ' (its project is still paused: `weft projects settings --resume`)' : ''}.\n`,
    );
  });
}

/**
 * `weft environments delete <name> --yes` / `weft projects delete <name> --yes`: the control rows at
 * once, the run data by cleanup jobs (docs/operations.md). `--yes` is required: nothing is archived.
 */
export async function runTenantDelete(
  what: 'environment' | 'project',
  name: string,
  options: OperationsOptions & { yes?: boolean },
): Promise<void> {
  if (!options.yes)
    throw new CliError(
      `deleting ${what} "${name}" removes its keys, workflows, schedules and webhooks at once and all its runs, steps, events and dataclips soon after (nothing is archived). Export what you need first, then pass --yes.`,
    );
  await withOperations(options, async (ops) => {
    const done =
      what === 'environment'
        ? await ops.deleteEnvironment({ ...projectArg(options), name })
        : await ops.deleteProject({ name });
    if (options.json) return printJson(done);
    process.stdout.write(
      `Deleted ${what} ${name} through ${ops.where} (environments ${done.environments.join(', ') || 'none'}). Its run data is removed in the background by \`weft server\` / \`weft worker\` (cleanup jobs: weft.cleanup_jobs).\n`,
    );
  });
}

// ── projects ──────────────────────────────────────────────────────────────────────────────────

function printProjects(projects: readonly ProjectView[]): void {
  process.stdout.write(
    `${formatTable(
      ['name', 'id', 'save dataclips', 'retention', 'state', 'created'],
      projects.map((p) => [
        `${p.name}${p.current ? ' *' : ''}`,
        p.id,
        p.saveDataclips ? 'yes' : 'no',
        p.retentionDays === null ? 'forever' : `${p.retentionDays} days`,
        p.paused ? 'paused' : 'active',
        formatTime(p.createdAt),
      ]),
    )}\n`,
  );
}

export async function runProjectsList(options: OperationsOptions): Promise<void> {
  await withOperations(options, async (ops) => {
    const projects = await ops.listProjects();
    if (options.json) return printJson({ data: projects });
    printProjects(projects);
  });
}

/** `--retention-days 30` or `forever`/`none` (keep bodies forever). */
function parseRetention(value: string | undefined): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === 'forever' || value === 'none') return null;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 36_500)
    throw new CliError(
      `--retention-days must be a whole number of days (1–36500) or "forever"; found "${value}".`,
    );
  return n;
}

function parseBoolean(value: string | undefined, option: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'true' || value === 'yes' || value === 'on') return true;
  if (value === 'false' || value === 'no' || value === 'off') return false;
  throw new CliError(`${option} must be true or false; found "${value}".`);
}

export async function runProjectsCreate(
  name: string,
  options: OperationsOptions & {
    environment?: string;
    saveDataclips?: string;
    retentionDays?: string;
  },
): Promise<void> {
  const args: Parameters<Operations['createProject']>[0] = { name };
  if (options.environment !== undefined) args.environment = options.environment;
  const save = parseBoolean(options.saveDataclips, '--save-dataclips');
  if (save !== undefined) args.saveDataclips = save;
  const retention = parseRetention(options.retentionDays);
  if (retention !== undefined) args.retentionDays = retention;
  await withOperations(options, async (ops) => {
    const made = await ops.createProject(args);
    if (options.json) return printJson(made);
    process.stdout.write(
      [
        `Created project ${made.project.name} (${made.project.id}) with environment ${made.environment.name} through ${ops.where}.`,
        'Its admin key, shown only this once (a project is managed with its own keys):',
        '',
        `  ${made.key.key}`,
        '',
      ].join('\n'),
    );
  });
}

export async function runProjectsSettings(
  name: string | undefined,
  options: OperationsOptions & {
    saveDataclips?: string;
    retentionDays?: string;
    pause?: boolean;
    resume?: boolean;
  },
): Promise<void> {
  if (options.pause && options.resume) throw new CliError('pass --pause or --resume, not both.');
  const settings: Omit<Parameters<Operations['updateProject']>[0], 'name'> = {};
  const save = parseBoolean(options.saveDataclips, '--save-dataclips');
  if (save !== undefined) settings.saveDataclips = save;
  const retention = parseRetention(options.retentionDays);
  if (retention !== undefined) settings.retentionDays = retention;
  if (options.pause) settings.paused = true;
  if (options.resume) settings.paused = false;
  await withOperations(options, async (ops, via) => {
    // With the API the project defaults to the key's own (the one marked current).
    const projectName =
      name ??
      (via === 'api'
        ? (await ops.listProjects()).find((p) => p.current)?.name
        : (options.project ?? 'default'));
    if (projectName === undefined)
      throw new CliError('name the project: weft projects settings <name>.');
    const project =
      Object.keys(settings).length === 0
        ? (await ops.listProjects()).find((p) => p.name === projectName)
        : await ops.updateProject({ name: projectName, ...settings });
    if (!project) throw new CliError(`no project "${projectName}" (${ops.where}).`);
    if (options.json) return printJson(project);
    printProjects([project]);
  });
}
