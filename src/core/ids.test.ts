import { describe, expect, it } from 'vitest';
import { assertLocationTag, idTime, mintRunScopedId, parseRunScopedId } from './ids.js';

describe('ids', () => {
  it('carry the location tag and parse back', () => {
    const id = mintRunScopedId('run', 'b7');
    expect(id).toMatch(/^run_b7[0-9a-z]{26}$/);
    expect(parseRunScopedId(id)).toEqual({ prefix: 'run', tag: 'b7' });
  });

  it('are strictly increasing within a process, also inside one millisecond', () => {
    const ids = Array.from({ length: 5000 }, () => mintRunScopedId('run', 'a0'));
    const sorted = [...ids].sort();
    expect(sorted).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('encode the time', () => {
    const before = Date.now();
    const t = idTime(mintRunScopedId('dc', 'a0'));
    expect(t).toBeGreaterThanOrEqual(before - 1);
    expect(t).toBeLessThanOrEqual(Date.now() + 1);
  });

  it('malformed ids parse to nothing (a 404, never a crash)', () => {
    for (const bad of [
      '',
      'run_',
      'run_a0',
      'run_A0' + 'x'.repeat(26),
      'xyz_a0' + '0'.repeat(26),
      'run_a0' + 'u'.repeat(26),
      "run_a0'; drop table runs",
    ]) {
      expect(parseRunScopedId(bad)).toBeUndefined();
    }
  });

  it('location tags are two lowercase alphanumerics', () => {
    expect(() => assertLocationTag('a0')).not.toThrow();
    expect(() => assertLocationTag('A0')).toThrow('expected 2 characters');
    expect(() => assertLocationTag('abc')).toThrow();
  });
});
