/** Retry policy and backoff: pure math, used by the worker when an attempt fails. */
import { WeftError } from './errors.js';

/** A duration: milliseconds, or a string like `500ms`, `30s`, `5m`, `2h`, `1d`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(value: Duration, what: string): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
  } else {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value);
    if (match) return Number(match[1]) * UNITS[match[2]!]!;
  }
  throw new WeftError(
    'invalid_workflow',
    `${what} is ${JSON.stringify(value)}: expected milliseconds (a number ≥ 0) or a string like "500ms", "30s", "5m", "2h", "1d".`,
  );
}

export interface RetryPolicy {
  /** How many times the step's code may start, crashes included. Default 3. */
  maxAttempts?: number;
  /** Delay before the 2nd attempt. Default 1s. */
  minDelay?: Duration;
  /** Upper bound of any delay. Default 5m. */
  maxDelay?: Duration;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Randomize each delay by ±`jitter` (0..1). Default 0.2. */
  jitter?: number;
}

export interface ResolvedRetryPolicy {
  maxAttempts: number;
  minDelayMs: number;
  maxDelayMs: number;
  factor: number;
  jitter: number;
}

export const DEFAULT_RETRY: ResolvedRetryPolicy = {
  maxAttempts: 3,
  minDelayMs: 1000,
  maxDelayMs: 300_000,
  factor: 2,
  jitter: 0.2,
};

export function resolveRetryPolicy(
  policy: RetryPolicy | undefined,
  where: string,
): ResolvedRetryPolicy {
  const p = policy ?? {};
  const resolved: ResolvedRetryPolicy = {
    maxAttempts: p.maxAttempts ?? DEFAULT_RETRY.maxAttempts,
    minDelayMs:
      p.minDelay === undefined
        ? DEFAULT_RETRY.minDelayMs
        : parseDuration(p.minDelay, `${where} retry.minDelay`),
    maxDelayMs:
      p.maxDelay === undefined
        ? DEFAULT_RETRY.maxDelayMs
        : parseDuration(p.maxDelay, `${where} retry.maxDelay`),
    factor: p.factor ?? DEFAULT_RETRY.factor,
    jitter: p.jitter ?? DEFAULT_RETRY.jitter,
  };
  const bad = (field: string, expected: string, found: unknown): never => {
    throw new WeftError(
      'invalid_workflow',
      `${where} has retry.${field} = ${JSON.stringify(found)}: expected ${expected}.`,
      {
        details: { field: `retry.${field}` },
      },
    );
  };
  if (
    !Number.isInteger(resolved.maxAttempts) ||
    resolved.maxAttempts < 1 ||
    resolved.maxAttempts > 1000
  ) {
    bad('maxAttempts', 'a whole number from 1 to 1000', p.maxAttempts);
  }
  if (!(resolved.factor >= 1 && resolved.factor <= 100))
    bad('factor', 'a number from 1 to 100', p.factor);
  if (!(resolved.jitter >= 0 && resolved.jitter <= 1))
    bad('jitter', 'a number from 0 to 1', p.jitter);
  if (resolved.maxDelayMs < resolved.minDelayMs) {
    bad('maxDelay', `at least minDelay (${resolved.minDelayMs} ms)`, p.maxDelay);
  }
  return resolved;
}

/**
 * Delay before attempt `nextAttempt` (2 for the first retry): `minDelay * factor^(n-2)`, capped by
 * `maxDelay`, then spread by ±jitter so that many runs failing together do not retry together.
 */
export function backoffDelay(
  policy: ResolvedRetryPolicy,
  nextAttempt: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, nextAttempt - 2);
  const base = Math.min(policy.maxDelayMs, policy.minDelayMs * Math.pow(policy.factor, exponent));
  const spread = base * policy.jitter * (random() * 2 - 1);
  return Math.max(0, Math.min(policy.maxDelayMs, Math.round(base + spread)));
}
