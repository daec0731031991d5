/**
 * The control-plane store: organizations, projects, environments, API keys, workflows and their
 * immutable versions. Small data; run-path reads (API key → environment, environment / project
 * settings and organization flags, workflow → current version) go through the cache-first
 * resolver (cache.ts: missing vs not cached, bounded, TTL, per-organization epoch). Every write
 * drops this process's entries at once; other processes drop theirs on the `weft_control_changed`
 * notification the tables' triggers send, naming the organization (see `watchChanges`); with
 * `consistency: 'strict'` a server applies every notification committed before a request
 * ahead of serving it (`syncBeforeServe`), and the TTL bounds what a lost notification can cost
 * only while the channel is down. Records and row mapping: control-rows.ts.
 *
 * Kept whole (about 730 lines): every method shares the caches and their invalidation (dropCaches,
 * dropOrganization, watchChanges, syncBeforeServe, the drop on each write), so a split would pass
 * those around; the records and row mapping already live in control-rows.ts, the cache in cache.ts,
 * the cleanup of deleted tenants' run data in cleanup-store.ts.
 */
import { timingSafeEqual } from 'node:crypto';
import { WeftError } from '../core/errors.js';
import type { CompiledWorkflow } from '../core/graph.js';
import { mintControlId } from '../core/ids.js';
import { TtlCache } from './cache.js';
import { CHANNELS } from './channels.js';
import {
  ENVIRONMENT_COLUMNS,
  iso,
  KEY_SCOPES,
  PROJECT_COLUMNS,
  randomToken,
  sha256,
  toEnvironmentListing,
  toProject,
  toVersion,
  toWorkflow,
  WORKFLOW_COLUMNS,
  type ApiKeyIdentity,
  type ApiKeyRecord,
  type EnvironmentListing,
  type EnvironmentRecord,
  type KeyScope,
  type ProjectRecord,
  type Row,
  type WorkflowRecord,
  type WorkflowVersionRecord,
} from './control-rows.js';
import { sqlErrorCode, UNIQUE_VIOLATION, type Executor } from './executor.js';
import { quoteIdent } from './migrator.js';

export {
  KEY_SCOPES,
  type ApiKeyIdentity,
  type ApiKeyRecord,
  type EnvironmentListing,
  type EnvironmentRecord,
  type KeyScope,
  type ProjectRecord,
  type WorkflowRecord,
  type WorkflowVersionRecord,
} from './control-rows.js';

/**
 * How a cached control-plane row learns of a change made by another process.
 * - `notify` (default with one database): the `weft_control_changed` notification drops it when
 *   it arrives (milliseconds; the TTL bounds it while the channel is down). No added round trip.
 * - `strict` (default in split mode): before each request a server makes one round trip on its
 *   LISTEN connection (shared by concurrent requests, never on the pool), so every change
 *   committed before the request is applied before it is served; while the channel is down the
 *   cache is bypassed. A key revoked on one server is refused on the next request to any other.
 */
export type ControlConsistency = 'notify' | 'strict';

/** Cached key and environment rows live this long when no notification drops them. */
export const CONTROL_CACHE_TTL_MS = 5_000;

export class ControlStore {
  private readonly s: string;
  private readonly keyCache = new TtlCache<(ApiKeyIdentity & { organizationId: string }) | null>(
    CONTROL_CACHE_TTL_MS,
  );
  private readonly envCache = new TtlCache<EnvironmentRecord | null>(CONTROL_CACHE_TTL_MS);
  private readonly currentVersionCache = new TtlCache<
    (WorkflowVersionRecord & { organizationId: string }) | null
  >(2_000);
  /** Versions are immutable: cached without expiry. */
  private readonly versions = new Map<string, WorkflowVersionRecord>();
  private watching: Promise<void> | undefined;
  private readonly changeListeners = new Set<(organizationId: string | undefined) => void>();
  /** Counters for tests and metrics: notifications applied, strict syncs, syncs that failed. */
  readonly cacheStats = { notifications: 0, syncs: 0, syncsDown: 0 };

  constructor(
    readonly db: Executor,
    private readonly schema: string,
    readonly consistency: ControlConsistency = 'notify',
  ) {
    this.s = quoteIdent(schema);
  }

  /**
   * Call `listener` whenever cached control rows are dropped (with the organization, or undefined
   * for "everything"): for caches kept outside this store (a mint-site flag cache) that must follow
   * the same invalidation. Returns a function that removes it.
   */
  onChange(listener: (organizationId: string | undefined) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * In `strict` mode, make sure every control-plane change committed before this call has been
   * applied to the caches (one round trip on the LISTEN connection, shared with concurrent
   * callers); when that connection is down, drop the caches so this request reads the database.
   * Costs nothing in `notify` mode. Called by the API server before it authenticates a request.
   */
  async syncBeforeServe(): Promise<void> {
    if (this.consistency !== 'strict' || !this.db.listenBarrier) return;
    this.cacheStats.syncs++;
    if (!(await this.db.listenBarrier())) {
      this.cacheStats.syncsDown++;
      this.dropCaches();
    }
  }

  /**
   * Drop this process's key and environment caches whenever any process changes a key, an
   * environment, a project or an organization (the tables' triggers NOTIFY
   * `weft_control_changed` with the schema name). Started once, by long-lived processes (the API
   * server on its first request, a worker when it checks for a pause); short CLI commands do not
   * open a listening connection. The caches are dropped once the LISTEN is in place, so nothing
   * read before it can outlive a change, and again whenever the listening connection comes back
   * from an outage (what was sent meanwhile is lost); until it is back the 5 s TTL bounds it. Rejects when LISTEN fails (the caller logs it and
   * is retried on its next call).
   */
  watchChanges(): Promise<void> {
    this.watching ??= this.db
      .listen(
        CHANNELS.controlChanged,
        (payload) => {
          // `<schema>`: drop everything; `<schema> <organization id>`: that organization's rows
          if (payload === this.schema) {
            this.cacheStats.notifications++;
            this.dropCaches();
          } else if (payload.startsWith(`${this.schema} `)) {
            this.cacheStats.notifications++;
            this.dropOrganization(payload.slice(this.schema.length + 1));
          }
        },
        // Notifications sent while the connection was down are lost: assume something changed.
        { onReconnect: () => this.dropCaches() },
      )
      .then(
        () => this.dropCaches(),
        (error: unknown) => {
          this.watching = undefined;
          throw error;
        },
      );
    return this.watching;
  }

  /** Forget every cached row (their next read goes to the database). */
  dropCaches(): void {
    this.keyCache.dropAll();
    this.envCache.dropAll();
    this.currentVersionCache.dropAll();
    for (const listener of this.changeListeners) listener(undefined);
  }

  /**
   * The per-organization epoch: forget the cached keys, environments (settings, pause, flags) and
   * current versions of one organization, and every cached "does not exist".
   */
  dropOrganization(organizationId: string): void {
    this.keyCache.dropOrganization(organizationId);
    this.envCache.dropOrganization(organizationId);
    this.currentVersionCache.dropOrganization(organizationId);
    for (const listener of this.changeListeners) listener(organizationId);
  }

  async createOrganization(name: string): Promise<string> {
    const id = mintControlId('org');
    await this.db.query(`insert into ${this.s}.organizations (id, name) values ($1, $2)`, [
      id,
      name,
    ]);
    return id;
  }

  async getOrganization(
    organizationId: string,
  ): Promise<{ id: string; name: string; flags: Record<string, unknown> } | null> {
    const rows = await this.db.query<Row>(
      `select id, name, flags from ${this.s}.organizations where id = $1`,
      [organizationId],
    );
    const r = rows.rows[0];
    return r
      ? { id: r.id as string, name: r.name as string, flags: r.flags as Record<string, unknown> }
      : null;
  }

  /**
   * Set (non-null values) and remove (null values) organization flags in one statement; other
   * flags keep their value. Every environment of the organization sees the change on its next
   * trigger (the cached environment rows carry the flags; the notification drops them).
   */
  async updateOrganizationFlags(
    organizationId: string,
    changes: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const set = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== null));
    const remove = Object.keys(changes).filter((k) => changes[k] === null);
    const rows = await this.db.query<{ flags: Record<string, unknown> }>(
      `update ${this.s}.organizations set flags = (flags || $2::jsonb) - $3::text[]
        where id = $1 returning flags`,
      [organizationId, JSON.stringify(set), remove],
    );
    this.dropOrganization(organizationId);
    return rows.rows[0]?.flags ?? {};
  }

  /** Throws `already_exists` (409) when the organization has a project of that name. */
  async createProject(
    organizationId: string,
    name: string,
    settings: { saveDataclips?: boolean; retentionDays?: number | null } = {},
  ): Promise<string> {
    const id = mintControlId('prj');
    try {
      await this.db.query(
        `insert into ${this.s}.projects (id, organization_id, name, save_dataclips, retention_days) values ($1, $2, $3, $4, $5)`,
        [id, organizationId, name, settings.saveDataclips ?? true, settings.retentionDays ?? null],
      );
    } catch (error) {
      if (!ControlStore.isUniqueViolation(error)) throw error;
      throw new WeftError(
        'already_exists',
        `A project named "${name}" already exists in this organization. Pick another name, or list them with GET /api/v1/projects.`,
        { details: { project: name } },
      );
    }
    return id;
  }

  /**
   * Change a project's settings; fields left undefined keep their value. `paused` pauses (or
   * resumes) every environment of the project. Returns the project, or null when it is unknown.
   */
  async updateProjectSettings(
    projectId: string,
    settings: { saveDataclips?: boolean; retentionDays?: number | null; paused?: boolean },
  ): Promise<ProjectRecord | null> {
    const rows = await this.db.query<Row>(
      `update ${this.s}.projects
          set save_dataclips = coalesce($2, save_dataclips),
              retention_days = case when $3::boolean then $4::integer else retention_days end,
              paused_at = case when $5::boolean is null then paused_at
                               when $5 then coalesce(paused_at, now()) else null end
        where id = $1
        returning ${PROJECT_COLUMNS}`,
      [
        projectId,
        settings.saveDataclips ?? null,
        settings.retentionDays !== undefined,
        settings.retentionDays ?? null,
        settings.paused ?? null,
      ],
    );
    this.dropCaches();
    return rows.rows[0] ? toProject(rows.rows[0]) : null;
  }

  async listProjects(organizationId: string): Promise<ProjectRecord[]> {
    const rows = await this.db.query<Row>(
      `select ${PROJECT_COLUMNS} from ${this.s}.projects where organization_id = $1 order by name`,
      [organizationId],
    );
    return rows.rows.map(toProject);
  }

  /** Every project of every organization (the CLI on the database, where no key scopes it). */
  async listAllProjects(): Promise<ProjectRecord[]> {
    const rows = await this.db.query<Row>(
      `select ${PROJECT_COLUMNS} from ${this.s}.projects order by name, created_at, id`,
    );
    return rows.rows.map(toProject);
  }

  /** The oldest project of that name in any organization (the CLI's `--project`). */
  async findProjectByName(name: string): Promise<ProjectRecord | null> {
    const rows = await this.db.query<Row>(
      `select ${PROJECT_COLUMNS} from ${this.s}.projects where name = $1 order by created_at, id limit 1`,
      [name],
    );
    return rows.rows[0] ? toProject(rows.rows[0]) : null;
  }

  /**
   * The organization new projects go to when nothing names one (the CLI on the database): the
   * organization of the oldest project, or a new `default` organization.
   */
  async defaultOrganizationId(): Promise<string> {
    const rows = await this.db.query<{ organization_id: string }>(
      `select organization_id from ${this.s}.projects order by created_at, id limit 1`,
    );
    return rows.rows[0]?.organization_id ?? (await this.createOrganization('default'));
  }

  async findProject(organizationId: string, name: string): Promise<ProjectRecord | null> {
    const rows = await this.db.query<Row>(
      `select ${PROJECT_COLUMNS} from ${this.s}.projects where organization_id = $1 and name = $2`,
      [organizationId, name],
    );
    return rows.rows[0] ? toProject(rows.rows[0]) : null;
  }

  /** Throws `bad_request` for an invalid name and `already_exists` (409) for a taken one. */
  async createEnvironment(projectId: string, name: string): Promise<string> {
    if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(name)) {
      throw new WeftError(
        'bad_request',
        `environment name "${name}" is invalid: use 1–31 lowercase letters, digits and "-"`,
      );
    }
    const id = mintControlId('env');
    try {
      await this.db.query(
        `insert into ${this.s}.environments (id, project_id, name) values ($1, $2, $3)`,
        [id, projectId, name],
      );
    } catch (error) {
      if (!ControlStore.isUniqueViolation(error)) throw error;
      throw new WeftError(
        'already_exists',
        `The project already has an environment named "${name}". Pick another name, or list them with GET /api/v1/environments.`,
        { details: { environment: name } },
      );
    }
    return id;
  }

  async listEnvironments(projectId: string): Promise<EnvironmentListing[]> {
    const rows = await this.db.query<Row>(
      `select ${ENVIRONMENT_COLUMNS} from ${this.s}.environments e join ${this.s}.projects p on p.id = e.project_id
        where e.project_id = $1 order by e.name`,
      [projectId],
    );
    return rows.rows.map(toEnvironmentListing);
  }

  /** Pause or resume one environment of a project; null when the project has no such environment. */
  async setEnvironmentPaused(
    projectId: string,
    name: string,
    paused: boolean,
  ): Promise<EnvironmentListing | null> {
    const rows = await this.db.query<Row>(
      `update ${this.s}.environments e
          set paused_at = case when $3 then coalesce(e.paused_at, now()) else null end
         from ${this.s}.projects p
        where p.id = e.project_id and e.project_id = $1 and e.name = $2
        returning ${ENVIRONMENT_COLUMNS}`,
      [projectId, name, paused],
    );
    this.dropCaches();
    return rows.rows[0] ? toEnvironmentListing(rows.rows[0]) : null;
  }

  /**
   * Delete an environment, a project or an organization, with what hangs off it in the control
   * plane (keys, workflows and versions, schedules, webhooks: foreign-key cascades). Its run data
   * lives in the run-ops databases, where no cascade reaches: the same transaction records one
   * cleanup job per environment (cleanup_jobs), which `weft server` / `weft worker` work off
   * (cleanup-store.ts). Returns the environments deleted (empty when nothing matched).
   */
  async deleteTenant(
    what: 'environment' | 'project' | 'organization',
    id: string,
  ): Promise<{ environments: string[] }> {
    const where = { environment: 'e.id', project: 'p.id', organization: 'p.organization_id' }[what];
    const table = {
      environment: 'environments',
      project: 'projects',
      organization: 'organizations',
    }[what];
    const environments = await this.db.transaction(async (tx) => {
      const jobs = await tx.query<{ environment_id: string }>(
        `insert into ${this.s}.cleanup_jobs (environment_id, organization_id, project_id, reason)
         select e.id, p.organization_id, p.id, $2
           from ${this.s}.environments e join ${this.s}.projects p on p.id = e.project_id
          where ${where} = $1
         on conflict (environment_id) do nothing
         returning environment_id`,
        [id, what],
      );
      await tx.query(`delete from ${this.s}.${table} where id = $1`, [id]);
      return jobs.rows.map((r) => r.environment_id);
    });
    this.dropCaches();
    return { environments };
  }

  /** Create an organization, a project and one environment: what a test or a fresh install needs. */
  async createTenant(
    names: { organization: string; project: string; environment: string },
    settings: { saveDataclips?: boolean } = {},
  ) {
    const organizationId = await this.createOrganization(names.organization);
    const projectId = await this.createProject(organizationId, names.project, settings);
    const environmentId = await this.createEnvironment(projectId, names.environment);
    return { organizationId, projectId, environmentId };
  }

  async findEnvironmentByName(project: string, environment: string): Promise<string | undefined> {
    const rows = await this.db.query<{ id: string }>(
      `select e.id from ${this.s}.environments e join ${this.s}.projects p on p.id = e.project_id
        where p.name = $1 and e.name = $2 order by e.created_at limit 1`,
      [project, environment],
    );
    return rows.rows[0]?.id;
  }

  /** The oldest project of that name (what `weft dev` and `weft worker` add environments to). */
  async findProjectIdByName(project: string): Promise<string | undefined> {
    const rows = await this.db.query<{ id: string }>(
      `select id from ${this.s}.projects where name = $1 order by created_at, id limit 1`,
      [project],
    );
    return rows.rows[0]?.id;
  }

  getEnvironment(environmentId: string): Promise<EnvironmentRecord | null> {
    return this.envCache.get(
      environmentId,
      async () => {
        const rows = await this.db.query<Row>(
          `select e.id, e.name, e.project_id, p.name as project_name, p.organization_id, p.save_dataclips, p.retention_days,
                (e.paused_at is not null or p.paused_at is not null) as paused, o.flags
           from ${this.s}.environments e
           join ${this.s}.projects p on p.id = e.project_id
           join ${this.s}.organizations o on o.id = p.organization_id
          where e.id = $1`,
          [environmentId],
        );
        const r = rows.rows[0];
        if (!r) return null;
        return {
          id: r.id as string,
          name: r.name as string,
          projectId: r.project_id as string,
          projectName: r.project_name as string,
          organizationId: r.organization_id as string,
          saveDataclips: r.save_dataclips as boolean,
          retentionDays: r.retention_days === null ? null : Number(r.retention_days),
          paused: r.paused as boolean,
          flags: (r.flags as Record<string, unknown>) ?? {},
        };
      },
      (env) => env?.organizationId,
    );
  }

  /**
   * Create an API key for an environment. The token (`weft_<environment>_<32 random chars>`) is
   * returned once; only its sha256 is stored. Scopes default to `admin` here (what a bootstrap
   * key and the key of `weft dev` need); the API and `weft keys create` default to `trigger`.
   */
  async createApiKey(
    environmentId: string,
    label?: string,
    scopes: readonly KeyScope[] = ['admin'],
  ): Promise<{ id: string; token: string } & ApiKeyRecord> {
    const env = await this.getEnvironment(environmentId);
    if (!env) throw new WeftError('not_found', `environment ${environmentId} does not exist`);
    const token = `weft_${env.name}_${randomToken(32)}`;
    const id = mintControlId('key');
    const prefix = token.slice(0, token.lastIndexOf('_') + 5);
    const unique = KEY_SCOPES.filter((scope) => scopes.includes(scope));
    const rows = await this.db.query<{ created_at: unknown }>(
      `insert into ${this.s}.api_keys (id, environment_id, token_hash, token_prefix, label, scopes)
       values ($1, $2, $3, $4, $5, $6::text[]) returning created_at`,
      [id, environmentId, sha256(token), prefix, label ?? null, unique],
    );
    // An unknown token is cached as null: this one may have been tried before it existed.
    this.dropOrganization(env.organizationId);
    return {
      id,
      token,
      prefix,
      label: label ?? null,
      scopes: unique,
      environmentId,
      environment: env.name,
      createdAt: iso(rows.rows[0]!.created_at),
      revokedAt: null,
    };
  }

  /**
   * Revoke a key. With `projectId`, only a key of an environment of that project (an admin key
   * manages its own project). Takes effect at once in this process and, through the
   * notification, in every server process on its next request. False when no such active key.
   */
  async revokeApiKey(keyId: string, scope: { projectId?: string } = {}): Promise<boolean> {
    const rows = await this.db.query<{ id: string }>(
      `update ${this.s}.api_keys k set revoked_at = now()
        where k.id = $1 and k.revoked_at is null
          and ($2::text is null or k.environment_id in
                (select e.id from ${this.s}.environments e where e.project_id = $2))
        returning k.id`,
      [keyId, scope.projectId ?? null],
    );
    this.dropCaches();
    return rows.rows.length > 0;
  }

  /** The keys of one environment (prefixes only, never the token or its hash), oldest first. */
  async listApiKeys(environmentId: string): Promise<ApiKeyRecord[]> {
    const rows = await this.db.query<Row>(
      `select k.id, k.token_prefix, k.label, k.scopes, k.environment_id, e.name as environment,
              k.created_at, k.revoked_at
         from ${this.s}.api_keys k join ${this.s}.environments e on e.id = k.environment_id
        where k.environment_id = $1 order by k.created_at, k.id`,
      [environmentId],
    );
    return rows.rows.map((r) => ({
      id: r.id as string,
      prefix: r.token_prefix as string,
      label: (r.label as string | null) ?? null,
      scopes: r.scopes as KeyScope[],
      environmentId: r.environment_id as string,
      environment: r.environment as string,
      createdAt: iso(r.created_at),
      revokedAt: r.revoked_at ? iso(r.revoked_at) : null,
    }));
  }

  /**
   * The environment and scopes of a bearer token, or null. Looked up by the token's sha256
   * (unique index), then compared in constant time; revoked keys resolve to null.
   */
  resolveApiKey(token: string): Promise<ApiKeyIdentity | null> {
    if (!/^weft_[a-z0-9-]{1,31}_[0-9A-Za-z]{32}$/.test(token)) return Promise.resolve(null);
    const hash = sha256(token);
    return this.keyCache
      .get(
        hash,
        async () => {
          // api_keys.token_hash (unique index), then two primary-key joins for the organization
          const rows = await this.db.query<{
            id: string;
            environment_id: string;
            token_hash: string;
            scopes: KeyScope[];
            organization_id: string;
          }>(
            `select k.id, k.environment_id, k.token_hash, k.scopes, p.organization_id
               from ${this.s}.api_keys k
               join ${this.s}.environments e on e.id = k.environment_id
               join ${this.s}.projects p on p.id = e.project_id
              where k.token_hash = $1 and k.revoked_at is null`,
            [hash],
          );
          const r = rows.rows[0];
          if (!r) return null;
          const ok = timingSafeEqual(Buffer.from(r.token_hash, 'hex'), Buffer.from(hash, 'hex'));
          return ok
            ? {
                keyId: r.id,
                environmentId: r.environment_id,
                scopes: r.scopes,
                organizationId: r.organization_id,
              }
            : null;
        },
        (identity) => identity?.organizationId,
      )
      .then((identity) =>
        identity
          ? {
              keyId: identity.keyId,
              environmentId: identity.environmentId,
              scopes: identity.scopes,
            }
          : null,
      );
  }

  /**
   * Register a compiled workflow in an environment: a new immutable version when its hash is new,
   * and make it current. Concurrent registrations of the same definition (many workers booting)
   * serialize on the workflow row and agree on one version.
   */
  async registerWorkflow(
    environmentId: string,
    compiled: CompiledWorkflow,
  ): Promise<{ versionId: string; version: number; created: boolean }> {
    const result = await this.db.transaction(async (tx) => {
      await tx.query(
        `insert into ${this.s}.workflows (environment_id, id, description) values ($1, $2, $3)
         on conflict (environment_id, id) do update set description = excluded.description`,
        [environmentId, compiled.id, compiled.description ?? null],
      );
      // Lock the workflow row: version numbers are assigned one at a time.
      await tx.query(
        `select 1 from ${this.s}.workflows where environment_id = $1 and id = $2 for update`,
        [environmentId, compiled.id],
      );
      const existing = await tx.query<{ id: string; version: number }>(
        `select id, version from ${this.s}.workflow_versions where environment_id = $1 and workflow_id = $2 and hash = $3`,
        [environmentId, compiled.id, compiled.versionHash],
      );
      let versionId: string;
      let version: number;
      let created = false;
      if (existing.rows[0]) {
        versionId = existing.rows[0].id;
        version = Number(existing.rows[0].version);
      } else {
        versionId = mintControlId('wfv');
        const inserted = await tx.query<{ version: number }>(
          `insert into ${this.s}.workflow_versions (id, environment_id, workflow_id, version, hash, graph)
           select $1, $2, $3, coalesce(max(version), 0) + 1, $4, $5::jsonb
             from ${this.s}.workflow_versions where environment_id = $2 and workflow_id = $3
           returning version`,
          [
            versionId,
            environmentId,
            compiled.id,
            compiled.versionHash,
            JSON.stringify(compiled.graph),
          ],
        );
        version = Number(inserted.rows[0]!.version);
        created = true;
      }
      await tx.query(
        `update ${this.s}.workflows set current_version_id = $3, updated_at = now() where environment_id = $1 and id = $2`,
        [environmentId, compiled.id, versionId],
      );
      return { versionId, version, created };
    });
    this.currentVersionCache.invalidate(`${environmentId}/${compiled.id}`);
    return result;
  }

  /** The current version of a workflow (cached briefly), or null when the workflow is unknown. */
  async currentVersion(
    environmentId: string,
    workflowId: string,
  ): Promise<WorkflowVersionRecord | null> {
    const cached = await this.currentVersionCache.get(
      `${environmentId}/${workflowId}`,
      async () => {
        // workflows pk, workflow_versions pk, environments pk, projects pk (for the organization)
        const rows = await this.db.query<Row>(
          `select v.*, p.organization_id as version_organization_id
             from ${this.s}.workflows w join ${this.s}.workflow_versions v on v.id = w.current_version_id
             join ${this.s}.environments e on e.id = w.environment_id
             join ${this.s}.projects p on p.id = e.project_id
            where w.environment_id = $1 and w.id = $2`,
          [environmentId, workflowId],
        );
        const r = rows.rows[0];
        if (!r) return null;
        const v = toVersion(r);
        this.versions.set(v.id, v);
        return { ...v, organizationId: r.version_organization_id as string };
      },
      (v) => v?.organizationId,
    );
    if (!cached) return null;
    const { organizationId: _org, ...version } = cached;
    return version;
  }

  async getVersion(versionId: string): Promise<WorkflowVersionRecord | null> {
    const cached = this.versions.get(versionId);
    if (cached) return cached;
    const rows = await this.db.query<Row>(
      `select * from ${this.s}.workflow_versions where id = $1`,
      [versionId],
    );
    const r = rows.rows[0];
    if (!r) return null;
    const v = toVersion(r);
    this.versions.set(v.id, v);
    return v;
  }

  async listWorkflows(environmentId: string): Promise<WorkflowRecord[]> {
    const rows = await this.db.query<Row>(
      `select ${WORKFLOW_COLUMNS}
         from ${this.s}.workflows w left join ${this.s}.workflow_versions v on v.id = w.current_version_id
        where w.environment_id = $1 order by w.id`,
      [environmentId],
    );
    return rows.rows.map(toWorkflow);
  }

  /** One workflow with its current version, or null: a primary-key read of the workflow row. */
  async getWorkflow(environmentId: string, workflowId: string): Promise<WorkflowRecord | null> {
    const rows = await this.db.query<Row>(
      `select ${WORKFLOW_COLUMNS}
         from ${this.s}.workflows w left join ${this.s}.workflow_versions v on v.id = w.current_version_id
        where w.environment_id = $1 and w.id = $2`,
      [environmentId, workflowId],
    );
    return rows.rows[0] ? toWorkflow(rows.rows[0]) : null;
  }

  async listVersions(
    environmentId: string,
    workflowId: string,
  ): Promise<Array<Omit<WorkflowVersionRecord, 'graph'>>> {
    const rows = await this.db.query<Row>(
      `select id, workflow_id, environment_id, version, hash, created_at from ${this.s}.workflow_versions
        where environment_id = $1 and workflow_id = $2 order by version desc`,
      [environmentId, workflowId],
    );
    return rows.rows.map((r) => {
      const { graph: _graph, ...rest } = toVersion({ ...r, graph: null });
      return rest;
    });
  }

  /** True when the error is a unique violation (used by callers racing to create named rows). */
  static isUniqueViolation(error: unknown): boolean {
    return sqlErrorCode(error) === UNIQUE_VIOLATION;
  }
}
