/**
 * The control-plane store: organizations, projects, environments, API keys, workflows and their
 * immutable versions. Small data; run-path reads go through TtlCache.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { WeftError } from '../core/errors.js';
import type { CompiledWorkflow, SerializedGraph } from '../core/graph.js';
import { mintControlId } from '../core/ids.js';
import { TtlCache } from './cache.js';
import { sqlErrorCode, UNIQUE_VIOLATION, type Executor } from './executor.js';
import { quoteIdent } from './migrator.js';

export interface EnvironmentRecord {
  id: string;
  name: string;
  projectId: string;
  organizationId: string;
  saveDataclips: boolean;
  /** Organization feature flags, e.g. `{ "runs.location": "b0" }`. */
  flags: Record<string, unknown>;
}

export interface ApiKeyIdentity {
  keyId: string;
  environmentId: string;
}

export interface WorkflowVersionRecord {
  id: string;
  workflowId: string;
  environmentId: string;
  version: number;
  hash: string;
  graph: SerializedGraph;
  createdAt: string;
}

export interface WorkflowRecord {
  id: string;
  environmentId: string;
  description: string | null;
  currentVersion: WorkflowVersionRecord | null;
  createdAt: string;
  updatedAt: string;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function randomToken(length: number): string {
  const bytes = randomBytes(length * 2);
  let out = '';
  for (const b of bytes) {
    if (b < 248) out += BASE62[b % 62]; // 248 = 4 * 62: no modulo bias
    if (out.length === length) break;
  }
  return out.length === length ? out : out + randomToken(length - out.length);
}

type Row = Record<string, unknown>;
const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));

function toVersion(r: Row): WorkflowVersionRecord {
  return {
    id: r.id as string,
    workflowId: r.workflow_id as string,
    environmentId: r.environment_id as string,
    version: Number(r.version),
    hash: r.hash as string,
    graph: r.graph as SerializedGraph,
    createdAt: iso(r.created_at),
  };
}

const WORKFLOW_COLUMNS = `w.id, w.environment_id, w.description, w.created_at, w.updated_at,
  v.id as v_id, v.workflow_id as v_workflow_id, v.environment_id as v_environment_id, v.version as v_version,
  v.hash as v_hash, v.graph as v_graph, v.created_at as v_created_at`;

/** A workflow row joined with its current version (columns prefixed `v_`, see WORKFLOW_COLUMNS). */
function toWorkflow(r: Row): WorkflowRecord {
  return {
    id: r.id as string,
    environmentId: r.environment_id as string,
    description: (r.description as string | null) ?? null,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    currentVersion: r.v_id
      ? toVersion({
          id: r.v_id,
          workflow_id: r.v_workflow_id,
          environment_id: r.v_environment_id,
          version: r.v_version,
          hash: r.v_hash,
          graph: r.v_graph,
          created_at: r.v_created_at,
        })
      : null,
  };
}

export class ControlStore {
  private readonly s: string;
  private readonly keyCache = new TtlCache<ApiKeyIdentity | null>(5_000);
  private readonly envCache = new TtlCache<EnvironmentRecord | null>(5_000);
  private readonly currentVersionCache = new TtlCache<WorkflowVersionRecord | null>(2_000);
  /** Versions are immutable: cached without expiry. */
  private readonly versions = new Map<string, WorkflowVersionRecord>();

  constructor(
    readonly db: Executor,
    schema: string,
  ) {
    this.s = quoteIdent(schema);
  }

  async createOrganization(name: string): Promise<string> {
    const id = mintControlId('org');
    await this.db.query(`insert into ${this.s}.organizations (id, name) values ($1, $2)`, [
      id,
      name,
    ]);
    return id;
  }

  async createProject(
    organizationId: string,
    name: string,
    settings: { saveDataclips?: boolean } = {},
  ): Promise<string> {
    const id = mintControlId('prj');
    await this.db.query(
      `insert into ${this.s}.projects (id, organization_id, name, save_dataclips) values ($1, $2, $3, $4)`,
      [id, organizationId, name, settings.saveDataclips ?? true],
    );
    return id;
  }

  async updateProjectSettings(
    projectId: string,
    settings: { saveDataclips?: boolean },
  ): Promise<void> {
    if (settings.saveDataclips !== undefined) {
      await this.db.query(`update ${this.s}.projects set save_dataclips = $2 where id = $1`, [
        projectId,
        settings.saveDataclips,
      ]);
    }
    this.envCache.bumpEpoch();
  }

  async createEnvironment(projectId: string, name: string): Promise<string> {
    if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(name)) {
      throw new WeftError(
        'bad_request',
        `environment name "${name}" is invalid: use 1–31 lowercase letters, digits and "-"`,
      );
    }
    const id = mintControlId('env');
    await this.db.query(
      `insert into ${this.s}.environments (id, project_id, name) values ($1, $2, $3)`,
      [id, projectId, name],
    );
    return id;
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

  getEnvironment(environmentId: string): Promise<EnvironmentRecord | null> {
    return this.envCache.get(environmentId, async () => {
      const rows = await this.db.query<Row>(
        `select e.id, e.name, e.project_id, p.organization_id, p.save_dataclips, o.flags
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
        organizationId: r.organization_id as string,
        saveDataclips: r.save_dataclips as boolean,
        flags: (r.flags as Record<string, unknown>) ?? {},
      };
    });
  }

  /**
   * Create an API key for an environment. The token (`weft_<environment>_<32 random chars>`) is
   * returned once; only its sha256 is stored.
   */
  async createApiKey(
    environmentId: string,
    label?: string,
  ): Promise<{ id: string; token: string }> {
    const env = await this.getEnvironment(environmentId);
    if (!env) throw new WeftError('not_found', `environment ${environmentId} does not exist`);
    const token = `weft_${env.name}_${randomToken(32)}`;
    const id = mintControlId('key');
    await this.db.query(
      `insert into ${this.s}.api_keys (id, environment_id, token_hash, token_prefix, label) values ($1, $2, $3, $4, $5)`,
      [id, environmentId, sha256(token), token.slice(0, token.lastIndexOf('_') + 5), label ?? null],
    );
    return { id, token };
  }

  async revokeApiKey(keyId: string): Promise<boolean> {
    const rows = await this.db.query<{ token_hash: string }>(
      `update ${this.s}.api_keys set revoked_at = now() where id = $1 and revoked_at is null returning token_hash`,
      [keyId],
    );
    this.keyCache.bumpEpoch();
    return rows.rows.length > 0;
  }

  async listApiKeys(environmentId: string): Promise<
    Array<{
      id: string;
      prefix: string;
      label: string | null;
      createdAt: string;
      revokedAt: string | null;
    }>
  > {
    const rows = await this.db.query<Row>(
      `select id, token_prefix, label, created_at, revoked_at from ${this.s}.api_keys where environment_id = $1 order by created_at`,
      [environmentId],
    );
    return rows.rows.map((r) => ({
      id: r.id as string,
      prefix: r.token_prefix as string,
      label: (r.label as string | null) ?? null,
      createdAt: iso(r.created_at),
      revokedAt: r.revoked_at ? iso(r.revoked_at) : null,
    }));
  }

  /**
   * The environment a bearer token belongs to, or null. Looked up by the token's sha256 (unique
   * index), then compared in constant time; revoked keys resolve to null.
   */
  resolveApiKey(token: string): Promise<ApiKeyIdentity | null> {
    if (!/^weft_[a-z0-9-]{1,31}_[0-9A-Za-z]{32}$/.test(token)) return Promise.resolve(null);
    const hash = sha256(token);
    return this.keyCache.get(hash, async () => {
      const rows = await this.db.query<{ id: string; environment_id: string; token_hash: string }>(
        `select id, environment_id, token_hash from ${this.s}.api_keys where token_hash = $1 and revoked_at is null`,
        [hash],
      );
      const r = rows.rows[0];
      if (!r) return null;
      const ok = timingSafeEqual(Buffer.from(r.token_hash, 'hex'), Buffer.from(hash, 'hex'));
      return ok ? { keyId: r.id, environmentId: r.environment_id } : null;
    });
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
  currentVersion(environmentId: string, workflowId: string): Promise<WorkflowVersionRecord | null> {
    return this.currentVersionCache.get(`${environmentId}/${workflowId}`, async () => {
      const rows = await this.db.query<Row>(
        `select v.* from ${this.s}.workflows w join ${this.s}.workflow_versions v on v.id = w.current_version_id
          where w.environment_id = $1 and w.id = $2`,
        [environmentId, workflowId],
      );
      const r = rows.rows[0];
      if (!r) return null;
      const v = toVersion(r);
      this.versions.set(v.id, v);
      return v;
    });
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
