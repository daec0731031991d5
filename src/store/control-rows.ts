/**
 * The control plane's records and row mapping (ControlStore's vocabulary): keys and their scopes,
 * projects, environments, workflows and versions, and the column lists the store's queries share.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { SerializedGraph } from '../core/graph.js';

/**
 * What an API key may do. `read`: GET routes. `trigger`: read, and start and steer runs.
 * `admin`: everything (keys, environments, projects, schedules, webhooks).
 */
export type KeyScope = 'read' | 'trigger' | 'admin';
export const KEY_SCOPES: readonly KeyScope[] = ['read', 'trigger', 'admin'];

export interface EnvironmentRecord {
  id: string;
  name: string;
  projectId: string;
  projectName: string;
  organizationId: string;
  saveDataclips: boolean;
  /** The project's retention: bodies of ended runs' dataclips older than this are wiped. */
  retentionDays: number | null;
  /** The environment or its project is paused: triggers are refused and workers claim nothing. */
  paused: boolean;
  /** Organization feature flags, e.g. `{ "runs.location": "b0" }`. */
  flags: Record<string, unknown>;
}

export interface ApiKeyIdentity {
  keyId: string;
  environmentId: string;
  scopes: KeyScope[];
}

export interface ApiKeyRecord {
  id: string;
  /** `weft_<environment>_` and the first 4 random characters: enough to tell keys apart. */
  prefix: string;
  label: string | null;
  scopes: KeyScope[];
  environmentId: string;
  environment: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface ProjectRecord {
  id: string;
  organizationId: string;
  name: string;
  saveDataclips: boolean;
  retentionDays: number | null;
  paused: boolean;
  createdAt: string;
}

export interface EnvironmentListing {
  id: string;
  name: string;
  projectId: string;
  /** This environment's own flag; `projectPaused` says whether its project is paused too. */
  paused: boolean;
  projectPaused: boolean;
  createdAt: string;
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

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function randomToken(length: number): string {
  const bytes = randomBytes(length * 2);
  let out = '';
  for (const b of bytes) {
    if (b < 248) out += BASE62[b % 62]; // 248 = 4 * 62: no modulo bias
    if (out.length === length) break;
  }
  return out.length === length ? out : out + randomToken(length - out.length);
}

export type Row = Record<string, unknown>;
export const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));

export function toVersion(r: Row): WorkflowVersionRecord {
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

export const WORKFLOW_COLUMNS = `w.id, w.environment_id, w.description, w.created_at, w.updated_at,
  v.id as v_id, v.workflow_id as v_workflow_id, v.environment_id as v_environment_id, v.version as v_version,
  v.hash as v_hash, v.graph as v_graph, v.created_at as v_created_at`;

/** A workflow row joined with its current version (columns prefixed `v_`, see WORKFLOW_COLUMNS). */
export function toWorkflow(r: Row): WorkflowRecord {
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

export const PROJECT_COLUMNS = `id, organization_id, name, save_dataclips, retention_days, paused_at, created_at`;

export function toProject(r: Row): ProjectRecord {
  return {
    id: r.id as string,
    organizationId: r.organization_id as string,
    name: r.name as string,
    saveDataclips: r.save_dataclips as boolean,
    retentionDays: r.retention_days === null ? null : Number(r.retention_days),
    paused: r.paused_at !== null,
    createdAt: iso(r.created_at),
  };
}

export const ENVIRONMENT_COLUMNS = `e.id, e.name, e.project_id, e.paused_at, p.paused_at as project_paused_at, e.created_at`;

export function toEnvironmentListing(r: Row): EnvironmentListing {
  return {
    id: r.id as string,
    name: r.name as string,
    projectId: r.project_id as string,
    paused: r.paused_at !== null,
    projectPaused: r.project_paused_at !== null,
    createdAt: iso(r.created_at),
  };
}
