/**
 * Commands that work on the database directly: `weft migrate`, and the operations (keys,
 * environments, projects) when no server is reachable — creating the first admin key is how the
 * first API client gets in. With a server reachable the CLI uses the API instead
 * (admin-commands.ts), so nothing needs the server stopped.
 */
import { ensureEnvironment } from '../engine/tenant.js';
import type {
  ControlStore,
  EnvironmentListing,
  KeyScope,
  ProjectRecord,
} from '../store/control-store.js';
import {
  assertSplitAtBoot,
  describeTarget,
  openStores,
  serverDatabase,
  serverOrDevDatabase,
  type DatabaseTarget,
} from './database.js';
import type { Stores } from '../store/stores.js';
import { resolveDataDir } from './local-state.js';
import { CliError, printJson } from './output.js';

export interface MigrateOptions {
  databaseUrl?: string;
  json?: boolean;
}

export async function runMigrate(options: MigrateOptions): Promise<void> {
  const target = serverDatabase(options.databaseUrl, 'migrate');
  const { stores, close } = await openStores(target, {
    applicationName: 'weft-migrate',
    poolSize: 2,
  });
  try {
    let applied: string[];
    // split mode: refuse before anything is written (migrate() checks again, for embedders)
    await assertSplitAtBoot(stores, { liveEvents: false });
    try {
      applied = await stores.migrate();
      // the analytics mirror (docs/analytics.md): a location created now is co-published at once
      const { coPublishIfMirrored } = await import('../analytics/replicator.js');
      const published = await coPublishIfMirrored(
        [...stores.runs.locations.values()].map((l) => ({ db: l.db, schema: l.schema })),
      );
      if (published.length > 0) applied.push(`analytics publication: ${published.join(', ')}`);
    } catch (error) {
      throw new CliError(`migrating ${describeTarget(target)} failed: ${(error as Error).message}`);
    }
    if (options.json) printJson({ database: describeTarget(target), applied });
    else if (applied.length === 0)
      process.stdout.write(`${describeTarget(target)} is up to date; nothing to apply.\n`);
    else
      process.stdout.write(
        `Applied ${applied.length} migration${applied.length === 1 ? '' : 's'} to ${describeTarget(target)}:\n${applied.map((a) => `  ${a}`).join('\n')}\n`,
      );
  } finally {
    await close();
  }
}

/** What the database commands act on when no `--project` / `--environment` is given. */
const DEFAULT_PROJECT = 'default';
const DEFAULT_ENVIRONMENT = 'dev';

export interface DatabaseOptions {
  databaseUrl?: string;
  dataDir?: string;
}

export function operationsTarget(options: DatabaseOptions): DatabaseTarget {
  return serverOrDevDatabase(options.databaseUrl, resolveDataDir(options.dataDir));
}

/**
 * Open the database for an operations command. On a server the schema must already be
 * migrated; the dev folder is migrated here (it is what `weft dev` would do on start).
 */
export async function withDatabase<T>(
  options: DatabaseOptions,
  fn: (ops: DatabaseOperations, stores: Stores) => Promise<T>,
): Promise<T> {
  const target = operationsTarget(options);
  const opened = await openStores(target, { applicationName: 'weft-operations', poolSize: 2 });
  try {
    await assertSplitAtBoot(opened.stores, { liveEvents: false });
    if (target.kind === 'dev') await opened.stores.migrate();
    else if (!(await opened.stores.isReady()))
      throw new CliError(
        `the database ${describeTarget(target)} is not migrated: run \`weft migrate\` first.`,
      );
    return await fn(new DatabaseOperations(opened.stores.control, target), opened.stores);
  } finally {
    await opened.close();
  }
}

/**
 * The operations straight on the database: what an operator does before any server runs
 * (bootstrap: `weft keys create --scope admin`), or with none reachable. The CLI prefers the API
 * (admin-commands.ts); these take the project by name (`--project`) since there is no key to
 * say which. Results have the API's shapes, so one printer serves both.
 */
export class DatabaseOperations {
  readonly where: string;
  constructor(
    private readonly control: ControlStore,
    target: DatabaseTarget,
  ) {
    this.where = describeTarget(target);
  }

  private async project(name: string): Promise<ProjectRecord> {
    const project = await this.control.findProjectByName(name);
    if (!project)
      throw new CliError(
        `no project "${name}" in ${this.where}. \`weft projects list\` shows them; \`weft projects create ${name}\` makes it.`,
      );
    return project;
  }

  private async environment(project: string, name: string): Promise<EnvironmentListing> {
    const p = await this.project(project);
    const all = await this.control.listEnvironments(p.id);
    const found = all.find((e) => e.name === name);
    if (!found)
      throw new CliError(
        `project "${project}" has no environment "${name}" in ${this.where} (it has: ${all.map((e) => e.name).join(', ') || 'none'}). \`weft environments create ${name}\` makes it.`,
      );
    return found;
  }

  async createKey(args: {
    project?: string;
    environment?: string;
    label?: string;
    scopes: KeyScope[];
  }): Promise<CreatedKeyView> {
    // The first key of a fresh install also makes its environment (the bootstrap path).
    const environmentId = await ensureEnvironment(this.control, {
      project: args.project ?? DEFAULT_PROJECT,
      environment: args.environment ?? DEFAULT_ENVIRONMENT,
    });
    const key = await this.control.createApiKey(environmentId, args.label, args.scopes);
    return {
      id: key.id,
      key: key.token,
      prefix: key.prefix,
      label: key.label,
      scopes: key.scopes,
      environment: key.environment,
      createdAt: key.createdAt,
    };
  }

  async listKeys(args: { project?: string; environment?: string }): Promise<KeyView[]> {
    const env = await this.environment(
      args.project ?? DEFAULT_PROJECT,
      args.environment ?? DEFAULT_ENVIRONMENT,
    );
    return (await this.control.listApiKeys(env.id)).map(({ environmentId: _e, ...key }) => key);
  }

  async revokeKey(args: { keyId: string }): Promise<void> {
    if (!(await this.control.revokeApiKey(args.keyId)))
      throw new CliError(
        `no active API key ${args.keyId} in ${this.where} (unknown, or already revoked). \`weft keys list\` shows the keys.`,
      );
  }

  async listEnvironments(args: { project?: string }): Promise<EnvironmentView[]> {
    const p = await this.project(args.project ?? DEFAULT_PROJECT);
    return (await this.control.listEnvironments(p.id)).map(environmentView);
  }

  async createEnvironment(args: { project?: string; name: string }): Promise<EnvironmentView> {
    const project = args.project ?? DEFAULT_PROJECT;
    const p = await this.project(project);
    await this.control.createEnvironment(p.id, args.name);
    return environmentView(await this.environment(project, args.name));
  }

  async setEnvironmentPaused(args: {
    project?: string;
    name: string;
    paused: boolean;
  }): Promise<EnvironmentView> {
    const project = args.project ?? DEFAULT_PROJECT;
    const p = await this.project(project);
    const env = await this.control.setEnvironmentPaused(p.id, args.name, args.paused);
    if (!env) await this.environment(project, args.name); // throws, naming the known ones
    return environmentView(env!);
  }

  async deleteEnvironment(args: { project?: string; name: string }): Promise<DeletedView> {
    const env = await this.environment(args.project ?? DEFAULT_PROJECT, args.name);
    const { environments } = await this.control.deleteTenant('environment', env.id);
    return { name: args.name, deleted: true, environments };
  }

  async deleteProject(args: { name: string }): Promise<DeletedView> {
    const p = await this.project(args.name);
    const { environments } = await this.control.deleteTenant('project', p.id);
    return { name: args.name, deleted: true, environments };
  }

  async listProjects(): Promise<ProjectView[]> {
    return (await this.control.listAllProjects()).map(projectView);
  }

  async createProject(args: {
    name: string;
    environment?: string;
    saveDataclips?: boolean;
    retentionDays?: number | null;
  }): Promise<{ project: ProjectView; environment: EnvironmentView; key: CreatedKeyView }> {
    const org = await this.control.defaultOrganizationId();
    const settings: { saveDataclips?: boolean; retentionDays?: number | null } = {};
    if (args.saveDataclips !== undefined) settings.saveDataclips = args.saveDataclips;
    if (args.retentionDays !== undefined) settings.retentionDays = args.retentionDays;
    await this.control.createProject(org, args.name, settings);
    const environment = args.environment ?? DEFAULT_ENVIRONMENT;
    const key = await this.createKey({
      project: args.name,
      environment,
      label: `created with project ${args.name}`,
      scopes: ['admin'],
    });
    return {
      project: projectView((await this.control.findProject(org, args.name))!),
      environment: environmentView(await this.environment(args.name, environment)),
      key,
    };
  }

  async updateProject(args: {
    name: string;
    saveDataclips?: boolean;
    retentionDays?: number | null;
    paused?: boolean;
  }): Promise<ProjectView> {
    const p = await this.project(args.name);
    const { name: _name, ...settings } = args;
    return projectView((await this.control.updateProjectSettings(p.id, settings))!);
  }
}

/** What the API answers and the CLI prints (the same shapes from either side). */
export interface KeyView {
  id: string;
  prefix: string;
  label: string | null;
  scopes: KeyScope[];
  environment: string;
  createdAt: string;
  revokedAt: string | null;
}
export type CreatedKeyView = Omit<KeyView, 'revokedAt'> & { key: string };
/** A deleted environment or project (DELETE /api/v1/environments/{name}, /projects/{name}). */
export interface DeletedView {
  name: string;
  deleted: true;
  environments: string[];
}
export interface EnvironmentView {
  id: string;
  name: string;
  paused: boolean;
  projectPaused: boolean;
  current?: boolean;
  createdAt: string;
}
export interface ProjectView {
  id: string;
  name: string;
  saveDataclips: boolean;
  retentionDays: number | null;
  paused: boolean;
  current?: boolean;
  createdAt: string;
}

const environmentView = (e: EnvironmentListing): EnvironmentView => ({
  id: e.id,
  name: e.name,
  paused: e.paused,
  projectPaused: e.projectPaused,
  createdAt: e.createdAt,
});

const projectView = (p: ProjectRecord): ProjectView => ({
  id: p.id,
  name: p.name,
  saveDataclips: p.saveDataclips,
  retentionDays: p.retentionDays,
  paused: p.paused,
  createdAt: p.createdAt,
});
