/**
 * Bearer authentication. A key belongs to one environment; handlers read that environment from
 * the context and pass it to every store call, which is what makes another tenant's ids a 404.
 */
import type { MiddlewareHandler } from 'hono';
import type { ApiKeyIdentity, ControlStore } from '../store/control-store.js';
import { ApiError } from './errors.js';

export type AuthVariables = { identity: ApiKeyIdentity };

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Resolve `Authorization: Bearer <key>`. Unknown and revoked keys get the same answer, so the
 * response never tells a caller that a key once existed. The key itself is never echoed or
 * logged; messages show at most its non-secret prefix (`weft_<environment>_`).
 */
export function requireApiKey(
  control: ControlStore,
): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (header === undefined || header.trim() === '') {
      throw unauthorized(
        'missing_key',
        'This route needs an API key: send `Authorization: Bearer <api key>`. `weft dev` prints a local key.',
      );
    }
    const token = BEARER.exec(header)?.[1];
    if (token === undefined) {
      throw unauthorized(
        'malformed_header',
        'The Authorization header is not `Bearer <api key>`; send the key after the word "Bearer" and one space.',
      );
    }
    // Only the prefix is checked here; the full shape is ControlStore.resolveApiKey's business.
    if (!token.startsWith('weft_')) {
      throw unauthorized(
        'malformed_key',
        'The bearer token is not a Weft API key (expected `weft_<environment>_<32 letters and digits>`). Check that the whole key was copied.',
      );
    }
    const identity = await control.resolveApiKey(token);
    if (identity === null) {
      const prefix = token.slice(0, token.lastIndexOf('_') + 1);
      throw unauthorized(
        'unknown_key',
        `The API key ${prefix}… is unknown or has been revoked. Create a new key for the environment.`,
      );
    }
    c.set('identity', identity);
    await next();
  };
}

function unauthorized(reason: string, message: string): ApiError {
  return new ApiError('unauthorized', message, { reason });
}
