import { describe, expect, it } from 'vitest';
import { encodeJson, findJsonProblem } from './json.js';

describe('findJsonProblem', () => {
  it('accepts plain data and Dates (via toJSON), drops undefined properties', () => {
    expect(
      findJsonProblem({ a: [1, 'x', null, true, { b: 2 }], d: new Date(0), u: undefined }),
    ).toBeUndefined();
    expect(findJsonProblem(Object.create(null))).toBeUndefined();
  });

  it('reports the path and what was found', () => {
    expect(findJsonProblem({ a: [{ f: () => 1 }] })).toEqual({
      path: 'output.a[0].f',
      found: 'a function',
    });
    expect(findJsonProblem([undefined])).toEqual({
      path: 'output[0]',
      found: 'undefined inside an array',
    });
    expect(findJsonProblem({ x: Infinity })).toEqual({
      path: 'output.x',
      found: 'the number Infinity',
    });
    expect(findJsonProblem({ s: new Set([1]) })?.found).toBe('a Set');
    class Point {
      x = 1;
    }
    expect(findJsonProblem({ p: new Point() })?.found).toBe('an instance of Point');
    expect(findJsonProblem({ 'k\u0000': 1 })?.path).toBe('output (a key)');
  });

  it('allows shared (non-circular) references', () => {
    const shared = { v: 1 };
    expect(findJsonProblem({ a: shared, b: shared })).toBeUndefined();
  });
});

describe('encodeJson', () => {
  it('returns the text and the UTF-8 byte size', () => {
    expect(
      encodeJson({ é: 'ü' }, { what: 'x', root: 'output', maxBytes: 100, code: 'invalid_output' }),
    ).toEqual({ text: '{"é":"ü"}', bytes: 11 });
    expect(
      encodeJson(undefined, { what: 'x', root: 'output', maxBytes: 100, code: 'invalid_output' })
        .text,
    ).toBe('null');
  });

  it('refuses values over the limit with the sizes and the fix', () => {
    expect(() =>
      encodeJson('x'.repeat(20), {
        what: 'The input',
        root: 'input',
        maxBytes: 10,
        code: 'invalid_input',
      }),
    ).toThrow('The input is 22 bytes, over the limit of 10 bytes');
  });
});
