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
import { WeftError } from '../core/errors.js';
import { ID_ALPHABET as ALPHABET, mintControlId } from '../core/ids.js';
import { SECRET_KEY_ENV, SecretBox } from '../core/secret-box.js';
import type { Executor } from './executor.js';
import { quoteIdent } from './migrator.js';

export interface WebhookRecord {
  id: string;
  environmentId: string;
  workflowId: string;
  label: string | null;
  /**
   * The shared secret for request signatures, decrypted; null when requests are not signed, or
   * when the key that sealed it is not configured here (then `secretError` says which).
   */
  secret: string | null;
  /** Whether requests must be signed (true even when this process cannot open the secret). */
  signed: boolean;
  /** Why a signed webhook's secret cannot be opened by this process (a key is missing). */
  secretError?: WeftError;
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

const COLUMNS =
  'id, environment_id, workflow_id, label, secret, secret_key_id, enabled, created_at';

/** What `weft secrets rotate` did. */
export interface ResealReport {
  /** Secrets now sealed with the current key (from clear text or an older key). */
  resealed: number;
  /** Secrets sealed with a key that is not configured here: left as they are. */
  unreadable: Array<{ webhookId: string; keyId: string }>;
}

/**
 * Secrets at rest: each secret is sealed with AES-256-GCM under the current key of `secrets`
 * (`WEFT_SECRET_KEY`), bound to the webhook id, and its key id stored in `secret_key_id`. Reading
 * opens it with whichever configured key sealed it. A secret read in clear (written before
 * control migration 0005) or under a previous key is re-sealed with the current key as it is read
 * (a conditional update: a concurrent re-seal or change wins and nothing is lost), and
 * `resealSecrets` does them all at once — so a rotation needs no downtime: deploy with the new key
 * and the old one in `WEFT_SECRET_KEY_PREVIOUS`, run `weft secrets rotate`, then drop the old key.
 */
export class WebhookStore {
  private readonly s: string;

  /** @param secrets the keys; default from `WEFT_SECRET_KEY` / `WEFT_SECRET_KEY_PREVIOUS` */
  constructor(
    readonly db: Executor,
    schema: string,
    readonly secrets: SecretBox = SecretBox.fromEnv(process.env),
  ) {
    this.s = quoteIdent(schema);
  }

  /**
   * Create a webhook; its secret, if any, is stored sealed. Throws `invalid_config` (naming
   * WEFT_SECRET_KEY) when there is a secret and no key to seal it with: a secret is never stored
   * in clear. Unsigned webhooks need no key.
   */
  async createWebhook(p: {
    environmentId: string;
    workflowId: string;
    label?: string | null;
    secret?: string | null;
  }): Promise<WebhookRecord> {
    const id = mintWebhookId();
    let sealed: { keyId: string; sealed: string } | null = null;
    if (p.secret != null) {
      if (!this.secrets.canSeal) {
        throw new WeftError(
          'invalid_config',
          `This server has no key to encrypt webhook secrets with, so it does not store one: set ${SECRET_KEY_ENV} (64 hex digits, \`openssl rand -hex 32\`) in the environment of weft server / weft worker and restart, or create the webhook unsigned.`,
          { details: { variable: SECRET_KEY_ENV } },
        );
      }
      sealed = this.secrets.seal(p.secret, id);
    }
    const rows = await this.db.query<Row>(
      `insert into ${this.s}.webhooks (id, environment_id, workflow_id, label, secret, secret_key_id)
       values ($1, $2, $3, $4, $5, $6) returning ${COLUMNS}`,
      [
        id,
        p.environmentId,
        p.workflowId,
        p.label ?? null,
        sealed?.sealed ?? null,
        sealed?.keyId ?? null,
      ],
    );
    return this.toWebhook(rows.rows[0]!);
  }

  private toWebhook(r: Row, reseal = false): WebhookRecord {
    const stored = (r.secret as string | null) ?? null;
    const keyId = (r.secret_key_id as string | null) ?? null;
    const record: WebhookRecord = {
      id: r.id as string,
      environmentId: r.environment_id as string,
      workflowId: r.workflow_id as string,
      label: (r.label as string | null) ?? null,
      secret: null,
      signed: stored !== null,
      enabled: r.enabled as boolean,
      createdAt: iso(r.created_at),
    };
    if (stored === null) return record;
    try {
      record.secret = keyId === null ? stored : this.secrets.open(stored, keyId, record.id);
    } catch (error) {
      record.secretError = error as WeftError;
      return record;
    }
    if (reseal && keyId !== this.secrets.current?.id && this.secrets.canSeal)
      void this.reseal(record.id, stored, keyId, record.secret).catch(() => {
        // best effort: the next read or `weft secrets rotate` tries again
      });
    return record;
  }

  /**
   * Re-seal one secret with the current key, only if the row still holds what was read (a
   * concurrent re-seal or delete makes it a no-op). True when this call changed the row.
   */
  private async reseal(
    id: string,
    stored: string,
    keyId: string | null,
    plaintext: string,
  ): Promise<boolean> {
    const next = this.secrets.seal(plaintext, id);
    const rows = await this.db.query(
      `update ${this.s}.webhooks set secret = $2, secret_key_id = $3
        where id = $1 and secret = $4 and secret_key_id is not distinct from $5 returning id`,
      [id, next.sealed, next.keyId, stored, keyId],
    );
    return rows.rows.length > 0;
  }

  /**
   * Re-seal every secret that is in clear or sealed with a key other than the current one
   * (`weft secrets rotate`). Idempotent and safe while servers run: each row is changed by a
   * conditional update. Secrets whose key is not configured are reported and left alone.
   * Throws `invalid_config` when there is no current key.
   */
  async resealSecrets(): Promise<ResealReport> {
    const current = this.secrets.current;
    if (!current) {
      throw new WeftError(
        'invalid_config',
        `No key to re-encrypt with: set ${SECRET_KEY_ENV} to the new key and ${SECRET_KEY_ENV}_PREVIOUS to the old one(s).`,
      );
    }
    const rows = await this.db.query<Row>(
      `select id, secret, secret_key_id from ${this.s}.webhooks
        where secret is not null and secret_key_id is distinct from $1 order by id`,
      [current.id],
    );
    const report: ResealReport = { resealed: 0, unreadable: [] };
    for (const r of rows.rows) {
      const id = r.id as string;
      const stored = r.secret as string;
      const keyId = (r.secret_key_id as string | null) ?? null;
      if (keyId !== null && !this.secrets.canOpen(keyId)) {
        report.unreadable.push({ webhookId: id, keyId });
        continue;
      }
      const plaintext = keyId === null ? stored : this.secrets.open(stored, keyId, id);
      if (await this.reseal(id, stored, keyId, plaintext)) report.resealed++;
    }
    return report;
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
    return rows.rows[0] ? this.toWebhook(rows.rows[0], true) : undefined;
  }

  async getWebhook(environmentId: string, id: string): Promise<WebhookRecord | undefined> {
    if (!WEBHOOK_ID_PATTERN.test(id)) return undefined;
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from ${this.s}.webhooks where id = $1 and environment_id = $2`,
      [id, environmentId],
    );
    return rows.rows[0] ? this.toWebhook(rows.rows[0]) : undefined;
  }

  /** Webhooks of an environment, oldest first (index webhooks_environment). */
  async listWebhooks(environmentId: string): Promise<WebhookRecord[]> {
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from ${this.s}.webhooks where environment_id = $1 order by created_at, id`,
      [environmentId],
    );
    return rows.rows.map((r) => this.toWebhook(r));
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
    return rows.rows[0] ? this.toWebhook(rows.rows[0]) : undefined;
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
