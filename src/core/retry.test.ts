import { describe, expect, it } from 'vitest';
import { backoffDelay, parseDuration, resolveRetryPolicy } from './retry.js';

describe('retry policy', () => {
  it('parses durations', () => {
    expect(parseDuration('250ms', 'x')).toBe(250);
    expect(parseDuration('1.5s', 'x')).toBe(1500);
    expect(parseDuration('2h', 'x')).toBe(7_200_000);
    expect(() => parseDuration(-1, 'step `a` timeout')).toThrow('step `a` timeout is -1');
  });

  it('grows exponentially, capped, without jitter when jitter is 0', () => {
    const p = resolveRetryPolicy({ minDelay: 100, factor: 3, maxDelay: 1000, jitter: 0 }, 'w');
    expect([2, 3, 4, 5].map((n) => backoffDelay(p, n))).toEqual([100, 300, 900, 1000]);
  });

  it('spreads by ±jitter and never exceeds maxDelay', () => {
    const p = resolveRetryPolicy({ minDelay: 1000, maxDelay: 1100, jitter: 0.5 }, 'w');
    expect(backoffDelay(p, 2, () => 0)).toBe(500);
    expect(backoffDelay(p, 2, () => 1)).toBe(1100);
  });
});
