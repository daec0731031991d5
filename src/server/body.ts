/**
 * Reading JSON request bodies: size limits before anything is parsed or written, a content type
 * check, UTF-8 and JSON syntax checks with the parser's position, and a nesting guard.
 */
import type { MiddlewareHandler } from 'hono';
import { MAX_JSON_DEPTH } from '../core/json.js';
import { ApiError } from './errors.js';

/** The largest run input (10 MiB, core's default) plus room for the request envelope. */
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024 + 64 * 1024;

/**
 * Nesting allowed in a body: the input limit plus the envelope object plus one for an empty
 * innermost container. Anything deeper would be refused by core's encodeJson anyway; refusing it
 * here, with a byte scan, saves parsing it — `JSON.parse` of 10 MiB of `[` holds the event loop
 * for seconds.
 */
const MAX_BODY_DEPTH = MAX_JSON_DEPTH + 3;

// The same family @hono/zod-openapi's media type gate accepts: application/json, application/*+json.
const JSON_MEDIA_TYPE = /^application\/(?:[a-z.-]+\+)?json$/i;

/**
 * Middleware for routes with a JSON body. Limits are checked twice, because a client may lie or
 * stream: the declared `Content-Length` before reading a byte, then the bytes actually received,
 * stopping the read as soon as the limit is passed. Only then are the bytes checked as UTF-8 and
 * JSON, so syntax errors are reported with the parser's position.
 */
export function jsonBody(maxBytes: number): MiddlewareHandler {
  return async (c, next) => {
    const declared = c.req.header('content-length');
    if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
      // The upload is left unread, so the connection cannot carry another request.
      c.header('Connection', 'close');
      throw tooLarge(Number(declared), maxBytes, 'declares');
    }
    const stream = c.req.raw.body;
    // No body at all (a bare POST, with or without a JSON content type) is read as empty.
    const bytes =
      stream === null
        ? new Uint8Array(0)
        : await readLimited(stream, maxBytes).catch((error: unknown) => {
            c.header('Connection', 'close');
            throw error;
          });
    if (bytes.length === 0) {
      // An empty body, with or without a content type, means "no fields": the same as `{}`.
      const headers = new Headers(c.req.raw.headers);
      headers.set('content-type', 'application/json');
      headers.delete('content-length');
      c.req.raw = new Request(c.req.raw, { body: '{}', headers });
      return next();
    }
    const contentType = c.req.header('content-type');
    const mediaType = contentType?.split(';')[0]?.trim() ?? '';
    if (!JSON_MEDIA_TYPE.test(mediaType)) {
      throw new ApiError(
        'unsupported_media_type',
        `The request body must be JSON, but its Content-Type is ${contentType === undefined ? 'missing' : `"${contentType}"`}. Send it with \`Content-Type: application/json\` (with curl: -H 'content-type: application/json').`,
        { contentType: contentType ?? null },
      );
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new ApiError(
        'bad_request',
        'The request body is not valid UTF-8; encode JSON as UTF-8.',
      );
    }
    const tooDeep = findExcessNesting(bytes, MAX_BODY_DEPTH);
    if (tooDeep !== undefined) {
      throw new ApiError(
        'invalid_input',
        `The request body nests arrays or objects more than ${MAX_BODY_DEPTH} levels deep (at byte ${tooDeep}); a run input may nest at most ${MAX_JSON_DEPTH} levels. Flatten the data.`,
        { maxDepth: MAX_JSON_DEPTH, byteOffset: tooDeep },
      );
    }
    try {
      JSON.parse(text);
    } catch (error) {
      throw new ApiError(
        'bad_request',
        `The request body is not valid JSON (${(error as Error).message}). Send a JSON object such as {"input": {...}}.`,
      );
    }
    // The stream is consumed: hand the validator the same bytes, as Hono's own bodyLimit does.
    // It parses them once more; that second parse is the price of keeping validation (and its
    // OpenAPI description) in the one schema `@hono/zod-openapi` owns.
    c.req.raw = new Request(c.req.raw, { body: bytes });
    return next();
  };
}

export function tooLarge(bytes: number, maxBytes: number, verb: 'declares' | 'sent'): ApiError {
  return new ApiError(
    'payload_too_large',
    `The request body ${verb} ${verb === 'sent' ? 'more than ' : ''}${bytes} bytes; the limit is ${maxBytes} bytes. Store large data elsewhere and pass a reference in the input.`,
    { limitBytes: maxBytes },
  );
}

export async function readLimited(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      // Stop reading, but do not cancel: cancelling destroys the socket before the 413 is
      // written, and the client sees a reset instead of the answer. The Node adapter discards
      // what is left of the upload after responding (bounded in time and bytes).
      reader.releaseLock();
      throw tooLarge(maxBytes, maxBytes, 'sent');
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Byte offset where container nesting first exceeds `maxDepth`, or undefined. Brackets inside
 * strings do not count; UTF-8 continuation bytes are all >= 0x80, so a byte scan cannot mistake
 * part of a multi-byte character for a bracket or a quote.
 */
export function findExcessNesting(bytes: Uint8Array, maxDepth: number): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) {
      inString = true;
    } else if (b === 0x5b || b === 0x7b) {
      if (++depth > maxDepth) return i;
    } else if (b === 0x5d || b === 0x7d) {
      depth--;
    }
  }
  return undefined;
}
