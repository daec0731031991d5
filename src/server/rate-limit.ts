/**
 * Rate limits per API key: a token bucket per key, in this process's memory. Per process on
 * purpose — no database round trip per request — so N `weft server` processes behind a load
 * balancer allow N × the limit in total (docs/security.md). Only authenticated /api/v1 requests
 * count (the middleware runs after `requireApiKey`): probes, `OPTIONS` preflights (answered by
 * CORS before authentication), the docs and webhooks (`/hooks/…`, which carry no key) are not
 * limited here.
 */
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.js';
import type { AuthVariables } from './auth.js';

export interface RateLimit {
  /** Tokens added per second; a request takes one. */
  perSecond: number;
  /** Bucket size: how many requests may come at once after a quiet spell. */
  burst: number;
}

/**
 * Parse `--rate-limit` / `WEFT_RATE_LIMIT`: `<n>/s`, `<n>/min` or a bare `<n>` (per second), an
 * optional `,burst=<m>` (default: n), or `off`. Undefined for `off`; throws a message that names
 * `source` on anything else.
 */
export function parseRateLimit(text: string, source: string): RateLimit | undefined {
  const value = text.trim().toLowerCase();
  if (value === 'off' || value === '0') return undefined;
  const match =
    /^(\d+(?:\.\d+)?)(?:\s*\/\s*(s|sec|second|m|min|minute))?(?:\s*,\s*burst\s*=\s*(\d+))?$/.exec(
      value,
    );
  const n = match ? Number(match[1]) : NaN;
  if (!match || !(n > 0) || (match[3] !== undefined && Number(match[3]) < 1)) {
    throw new Error(
      `${source} must be a rate such as 20/s, 600/min or 20/s,burst=50 (or off); found ${JSON.stringify(text)}.`,
    );
  }
  const perMinute = match[2] !== undefined && match[2].startsWith('m');
  return {
    perSecond: perMinute ? n / 60 : n,
    burst: match[3] !== undefined ? Number(match[3]) : Math.max(1, Math.ceil(n)),
  };
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets by key id. `take` refills by the time elapsed, then takes a token; when there is
 * none it answers how many seconds until there is one. Idle buckets are dropped once full again
 * (they carry no information), so memory follows the keys active in the last burst/rate seconds.
 */
export class KeyBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = 0;

  constructor(
    readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** 0 when the request may go on; else the seconds to wait (≥ 1, an integer for Retry-After). */
  take(keyId: string): number {
    const now = this.now();
    this.sweep(now);
    const { perSecond, burst } = this.limit;
    const bucket = this.buckets.get(keyId) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
    bucket.at = now;
    this.buckets.set(keyId, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
  }

  private sweep(now: number): void {
    const fullAfterMs = (this.limit.burst / this.limit.perSecond) * 1000;
    if (now - this.lastSweep < Math.max(fullAfterMs, 10_000)) return;
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.at >= fullAfterMs) this.buckets.delete(key);
    }
  }
}

/**
 * 429 `rate_limited` with `Retry-After` (whole seconds) when the key's bucket is empty. Each
 * answered request also carries `RateLimit-Limit` (the burst) and `RateLimit-Policy`.
 */
export function rateLimitPerKey(
  limit: RateLimit,
  now?: () => number,
): MiddlewareHandler<{ Variables: AuthVariables }> {
  const buckets = new KeyBuckets(limit, now);
  const policy = `${limit.burst};w=${Math.round((limit.burst / limit.perSecond) * 1000) / 1000}`;
  return async (c, next) => {
    const { keyId } = c.get('identity');
    const wait = buckets.take(keyId);
    if (wait > 0) {
      c.header('Retry-After', String(wait));
      c.header('RateLimit-Policy', policy);
      throw new ApiError(
        'rate_limited',
        `API key ${keyId} sent more than ${limit.burst} requests at once or more than ${formatRate(limit)} over time (this server's --rate-limit). Retry after ${wait} s.`,
        { keyId, retryAfterSeconds: wait, limit: formatRate(limit), burst: limit.burst },
      );
    }
    c.header('RateLimit-Policy', policy);
    await next();
  };
}

export function formatRate(limit: RateLimit): string {
  return limit.perSecond >= 1
    ? `${Math.round(limit.perSecond * 1000) / 1000}/s`
    : `${Math.round(limit.perSecond * 60 * 1000) / 1000}/min`;
}
