/**
 * Webhooks: `POST /hooks/{id}` starts a run of one workflow in one environment. Control-plane
 * rows (table `webhooks`, control migration 0002).
 *
 * The id is the capability — the route asks for no API key — so it must not be guessable from
 * anything a caller can see. `mintControlId` alone is not enough: its random part is 16
 * base32 characters (80 bits), and inside one millisecond the process *increments* it instead of
 * drawing new bits, with one counter shared by every id kind. A run id minted in the same
 * millisecond as a webhook id would give the webhook id away (it differs by one). So a webhook id
 * is `hook_<26-char time-ordered body><26 chars = 130 fresh random bits>`: ordered by creation,
 * and as hard to guess as a 128-bit token.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { ID_ALPHABET as ALPHABET, mintControlId } from '../core/ids.js';
import type { Executor } from './executor.js';
import { quoteIdent } from './migrator.js';

export interface WebhookRecord {
  id: string;
  environmentId: string;
  workflowId: string;
  label: string | null;
  /** The shared secret for request signatures; null when requests are not signed. */
  secret: string | null;
  enabled: boolean;
  createdAt: string;
}

/** What `mintWebhookId` produces; anything else is answered 404 without a query. */
export const WEBHOOK_ID_PATTERN = /^hook_[0-9a-hjkmnp-tv-z]{52}$/;
const SECRET_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `hook_` + time-ordered body + 130 bits from the CSPRNG (26 base32 characters). */
export function mintWebhookId(): string {
  const bytes = randomBytes(26);
  let suffix = '';
  for (const b of bytes) suffix += ALPHABET[b & 31];
  return mintControlId('hook') + suffix;
}

/** A signing secret: `whsec_` + 32 base62 characters (190 bits), no modulo bias. */
export function mintWebhookSecret(): string {
  let out = 'whsec_';
  for (let i = 0; i < 32; i++) out += SECRET_ALPHABET[randomInt(SECRET_ALPHABET.length)];
  return out;
}

type Row = Record<string, unknown>;
const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));

function toWebhook(r: Row): WebhookRecord {
  return {
    id: r.id as string,
    environmentId: r.environment_id as string,
    workflowId: r.workflow_id as string,
    label: (r.label as string | null) ?? null,
    secret: (r.secret as string | null) ?? null,
    enabled: r.enabled as boolean,
    createdAt: iso(r.created_at),
  };
}

const COLUMNS = 'id, environment_id, workflow_id, label, secret, enabled, created_at';

export class WebhookStore {
  private readonly s: string;

  constructor(
    readonly db: Executor,
    schema: string,
  ) {
    this.s = quoteIdent(schema);
  }

  async createWebhook(p: {
    environmentId: string;
    workflowId: string;
    label?: string | null;
    secret?: string | null;
  }): Promise<WebhookRecord> {
    const rows = await this.db.query<Row>(
      `insert into ${this.s}.webhooks (id, environment_id, workflow_id, label, secret)
       values ($1, $2, $3, $4, $5) returning ${COLUMNS}`,
      [mintWebhookId(), p.environmentId, p.workflowId, p.label ?? null, p.secret ?? null],
    );
    return toWebhook(rows.rows[0]!);
  }

  /**
   * The webhook behind `POST /hooks/{id}`, whatever its environment (the id is the capability),
   * or undefined. Not cached: a deleted or disabled hook stops at once, on every server. One
   * primary-key read per request.
   */
  async findWebhook(id: string): Promise<WebhookRecord | undefined> {
    if (!WEBHOOK_ID_PATTERN.test(id)) return undefined;
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from ${this.s}.webhooks where id = $1`,
      [id],
    );
    return rows.rows[0] ? toWebhook(rows.rows[0]) : undefined;
  }

  async getWebhook(environmentId: string, id: string): Promise<WebhookRecord | undefined> {
    if (!WEBHOOK_ID_PATTERN.test(id)) return undefined;
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from ${this.s}.webhooks where id = $1 and environment_id = $2`,
      [id, environmentId],
    );
    return rows.rows[0] ? toWebhook(rows.rows[0]) : undefined;
  }

  /** Webhooks of an environment, oldest first (index webhooks_environment). */
  async listWebhooks(environmentId: string): Promise<WebhookRecord[]> {
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from ${this.s}.webhooks where environment_id = $1 order by created_at, id`,
      [environmentId],
    );
    return rows.rows.map(toWebhook);
  }

  /** Delete a webhook of an environment; false when there was none with that id there. */
  async deleteWebhook(environmentId: string, id: string): Promise<boolean> {
    if (!WEBHOOK_ID_PATTERN.test(id)) return false;
    const rows = await this.db.query(
      `delete from ${this.s}.webhooks where id = $1 and environment_id = $2 returning id`,
      [id, environmentId],
    );
    return rows.rows.length > 0;
  }

  /**
   * Change a webhook's label or turn it off (404 to callers) or on again, keeping its id and
   * secret. Undefined when the environment has no such webhook.
   */
  async updateWebhook(
    environmentId: string,
    id: string,
    changes: { enabled?: boolean; label?: string | null },
  ): Promise<WebhookRecord | undefined> {
    if (!WEBHOOK_ID_PATTERN.test(id)) return undefined;
    const rows = await this.db.query<Row>(
      `update ${this.s}.webhooks
          set enabled = coalesce($3, enabled),
              label = case when $4::boolean then $5 else label end
        where id = $1 and environment_id = $2
        returning ${COLUMNS}`,
      [
        id,
        environmentId,
        changes.enabled ?? null,
        changes.label !== undefined,
        changes.label ?? null,
      ],
    );
    return rows.rows[0] ? toWebhook(rows.rows[0]) : undefined;
  }

  /** Turn a webhook off (404 to callers) or on again, keeping its id. False when not found. */
  async setWebhookEnabled(environmentId: string, id: string, enabled: boolean): Promise<boolean> {
    if (!WEBHOOK_ID_PATTERN.test(id)) return false;
    const rows = await this.db.query(
      `update ${this.s}.webhooks set enabled = $3 where id = $1 and environment_id = $2 returning id`,
      [id, environmentId, enabled],
    );
    return rows.rows.length > 0;
  }
}
