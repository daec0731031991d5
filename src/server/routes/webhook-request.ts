/**
 * Reading a webhook delivery (routes/webhooks.ts): its signature check, and what of the request
 * becomes the run's input dataclip — the headers minus hop-by-hop ones and credentials, the query,
 * and the body (JSON when the content type says so, else UTF-8 text).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { MAX_JSON_DEPTH } from '../../core/json.js';
import type { WebhookRecord } from '../../store/webhook-store.js';
import { findExcessNesting } from '../body.js';
import { ApiError } from '../errors.js';

export const SIGNATURE_HEADER = 'x-weft-signature';

/** Hop-by-hop (RFC 9110 §7.6.1) and credentials: never stored in a dataclip. */
const DROPPED_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'authorization',
  'cookie',
]);

const JSON_MEDIA_TYPE = /^application\/(?:[a-z0-9.-]+\+)?json$/i;

/**
 * Throws `invalid_signature` (missing, malformed or not matching the body). The HMACs are compared
 * in constant time, so a sender cannot find the right one a byte at a time.
 */
export function verifySignature(
  hook: WebhookRecord,
  header: string | undefined,
  body: Uint8Array,
): void {
  const match = header === undefined ? null : /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!match) {
    throw new ApiError(
      'invalid_signature',
      header === undefined
        ? `This webhook requires signed requests: send \`${SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body, keyed with the webhook's secret>\`.`
        : `The ${SIGNATURE_HEADER} header is not \`sha256=<64 hex digits>\`; send the hex HMAC-SHA256 of the raw body, keyed with the webhook's secret.`,
      { header: SIGNATURE_HEADER, reason: header === undefined ? 'missing' : 'malformed' },
    );
  }
  const expected = createHmac('sha256', hook.secret!).update(body).digest();
  const given = Buffer.from(match[1]!, 'hex');
  if (!timingSafeEqual(expected, given)) {
    throw new ApiError(
      'invalid_signature',
      `The ${SIGNATURE_HEADER} does not match the body: sign the exact bytes sent (no re-serialized JSON) with the webhook's secret, HMAC-SHA256, hex-encoded.`,
      { header: SIGNATURE_HEADER, reason: 'mismatch' },
    );
  }
}

export function keptHeaders(headers: Headers): Record<string, string> {
  // Headers named by `Connection` are hop-by-hop too (RFC 9110 §7.6.1).
  const named = new Set(
    (headers.get('connection') ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (!DROPPED_HEADERS.has(name) && !named.has(name)) out[name] = value;
  });
  return out;
}

/** Query parameters; a repeated name becomes an array, in order. */
export function queryOf(url: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URL(url).searchParams) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/** JSON bodies parsed, other bodies as text; an empty body is null. */
export function parseBody(contentType: string | undefined, bytes: Uint8Array): unknown {
  if (bytes.length === 0) return null;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ApiError(
      'unsupported_media_type',
      `The webhook body is not UTF-8 text (content type ${contentType === undefined ? 'missing' : `"${contentType}"`}); a webhook stores JSON or text. Send JSON, text, or base64-encode binary data.`,
      { contentType: contentType ?? null },
    );
  }
  const mediaType = contentType?.split(';')[0]?.trim() ?? '';
  if (!JSON_MEDIA_TYPE.test(mediaType)) return text;
  const tooDeep = findExcessNesting(bytes, MAX_JSON_DEPTH);
  if (tooDeep !== undefined) {
    throw new ApiError(
      'invalid_input',
      `The webhook body nests arrays or objects more than ${MAX_JSON_DEPTH} levels deep (at byte ${tooDeep}); flatten the data.`,
      { maxDepth: MAX_JSON_DEPTH, byteOffset: tooDeep },
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ApiError(
      'bad_request',
      `The webhook body is sent as ${mediaType} but is not valid JSON (${(error as Error).message}). Send valid JSON, or another content type to store it as text.`,
      { contentType: contentType ?? null },
    );
  }
}
