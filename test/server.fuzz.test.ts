/**
 * Route-by-route fuzz of the HTTP API, on PGlite and PostgreSQL: every operation of the OpenAPI
 * document (read from the app, so a new route is fuzzed without touching this file), every path,
 * query, header and body field, with NUL, lone surrogates, U+FFFD, huge strings, deep nesting and
 * wrong types. The property: no answer is a 5xx (bad input is the caller's to fix, so a 4xx), and
 * a text problem a field has is a 422 naming that field.
 *
 * Catches: a string that reaches SQL unchecked (PostgreSQL refuses `\u0000`: a 500), a schema
 * that lets a wrong type through to a handler that throws, a route added without `dbText()`.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { BACKENDS } from './support/databases.js';
import { openServerFixture, type ServerFixture } from './support/server-fixture.js';

/** Runs per operation: enough to hit every field with every kind of bad value, under a minute. */
const RUNS_PER_OPERATION = 24;

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
}
interface Operation {
  method: string;
  path: string;
  parameters: Parameter[];
  bodyFields: string[] | null;
  requiredBodyFields: string[];
}

/** Strings that have broken servers: the issue's list, and what sits next to it. */
const NASTY_STRINGS = [
  '\u0000',
  'a\u0000b',
  '\uD800',
  'x\uDC00',
  '\uDBFF\uDFFF', // a valid pair: must be accepted or refused cleanly
  '\uFFFD',
  '',
  ' ',
  '%00',
  '../../etc/passwd',
  "'; drop table runs; --",
  '\r\nX-Forged: 1',
  '\u001b[31mred',
  'run_a001jh8k2m3n4p5q6r7s8t9v0w1x',
  'x'.repeat(300_000),
  '9'.repeat(40),
  '-1',
  '1e309',
  '2025-02-30T00:00:00Z',
  '0000-01-01T00:00:00Z',
  '🙂'.repeat(1000),
];

/** Tried in every field of every route (the random fuzz below adds the rest). */
const EVERY_FIELD_VALUES: unknown[] = [
  '\u0000',
  'a\u0000b',
  '\uD800',
  'x\uDC00',
  '\uFFFD',
  'x'.repeat(300_000),
  -1,
  null,
  ['\u0000'],
  { '\u0000': '\uD800' },
];

const nastyString = fc.oneof(
  fc.constantFrom(...NASTY_STRINGS),
  fc.string({ unit: 'binary', maxLength: 40 }),
  // any UTF-16 code unit, lone surrogates included
  fc
    .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 12 })
    .map((units) => String.fromCharCode(...units)),
);

/** Valid values of body fields by name (ids of real resources are filled in per backend). */
const VALID: Record<string, unknown> = {
  input: { a: 1 },
  cron: '0 0 1 1 *',
  idempotencyKey: 'fuzz',
  label: 'fuzz',
  secret: 's'.repeat(20),
  paused: false,
  scopes: ['read'],
};

const asText = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v) ?? ''));

const deep = (depth: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
};

const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: nastyString },
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(deep(300), deep(10_000), [], {}, ['\u0000'], { '\u0000': 1, '\uD800': 2 }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Percent-encode any UTF-16 string, lone surrogates too (as WTF-8 bytes, like a raw client). */
function encodeSegment(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    let out = '';
    for (const ch of s) {
      const unit = ch.codePointAt(0)!;
      if (ch.length === 1 && unit >= 0xd800 && unit <= 0xdfff) {
        out += `%${(0xe0 | (unit >> 12)).toString(16)}%${(0x80 | ((unit >> 6) & 0x3f)).toString(16)}%${(0x80 | (unit & 0x3f)).toString(16)}`;
      } else out += encodeURIComponent(ch);
    }
    return out;
  }
}

/** Headers carry bytes (latin-1, no NUL or line breaks): anything else is refused by the client. */
const asHeaderValue = (v: unknown): string | undefined => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s !== undefined && /^[\u0020-\u007e\u0080-\u00ff\t]*$/.test(s) && s.length < 8000
    ? s
    : undefined;
};

function operationsOf(doc: {
  paths: Record<string, Record<string, Record<string, unknown>>>;
  components?: {
    schemas?: Record<string, { properties?: Record<string, unknown>; required?: string[] }>;
  };
}): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const parameters = ((op.parameters as Parameter[] | undefined) ?? []).map((p) => ({
        name: p.name,
        in: p.in,
      }));
      const content = (op.requestBody as { content?: Record<string, { schema?: unknown }> })
        ?.content?.['application/json']?.schema as
        { $ref?: string; properties?: Record<string, unknown>; required?: string[] } | undefined;
      let bodyFields: string[] | null = null;
      let requiredBodyFields: string[] = [];
      if (content) {
        const schema = content.$ref
          ? doc.components?.schemas?.[content.$ref.split('/').pop()!]
          : content;
        bodyFields = Object.keys(schema?.properties ?? {});
        requiredBodyFields = schema?.required ?? [];
      }
      ops.push({ method: method.toUpperCase(), path, parameters, bodyFields, requiredBodyFields });
    }
  }
  return ops;
}

describe.each(BACKENDS)('fuzzing every route on %s', (backend) => {
  let f: ServerFixture;
  let ops: Operation[];
  /** Real ids, mixed into the values so that requests also get past the lookups. */
  const real: Record<string, string[]> = {};

  beforeAll(async () => {
    const approve = defineWorkflow('approve')
      .approval('ok', {})
      .step('after', () => 1);
    f = await openServerFixture(backend, [defineWorkflow('add').step('sum', () => 2), approve]);
    const doc = await (await f.app.request('/api/openapi.json')).json();
    ops = operationsOf(doc as Parameters<typeof operationsOf>[0]);
    const post = async (path: string, body: unknown) =>
      (await (
        await f.app.request(path, { method: 'POST', headers: f.auth, body: JSON.stringify(body) })
      ).json()) as Record<string, unknown>;
    const run = await post('/api/v1/workflows/add/runs', { input: { a: 1 } });
    const waiting = await post('/api/v1/workflows/approve/runs', {});
    const schedule = await post('/api/v1/schedules', { workflowId: 'add', cron: '0 0 1 1 *' });
    const hook = await post('/api/v1/webhooks', { workflowId: 'add', label: 'fuzz' });
    const key = await post('/api/v1/keys', { label: 'fuzz victim' });
    real.workflowId = ['add', 'approve'];
    real.runId = [run.id as string, waiting.id as string];
    real.scheduleId = [schedule.id as string];
    real.webhookId = [hook.id as string];
    real.keyId = [key.id as string];
    real.name = ['test', 'staging'];
    real.dataclipId = [run.inputDataclipId as string];
    real.fromStep = ['sum', 'ok'];
    real.cron = ['* * * * *'];
  }, 60_000);
  afterAll(async () => {
    await f?.close();
  });

  /** A valid value for a field or parameter, so that one bad field is what a request tests. */
  const validFor = (field: string, op: Operation): unknown => {
    // a DELETE of an environment or project by its real name would delete the fixture's own
    // (its key, workflows and runs) and turn every later request into a 401: delete a stranger
    if (op.method === 'DELETE' && field === 'name')
      return op.path.includes('projects') ? 'fuzz-project' : 'fuzz-doomed';
    if (real[field]) return real[field][0];
    if (field === 'name') return op.path.includes('projects') ? 'fuzz-project' : 'fuzz-env';
    return VALID[field];
  };

  /** What a request is made of: each target is `path:x`, `query:x`, `header:x` or `body:x`. */
  const targetsOf = (op: Operation): string[] => [
    ...op.parameters.map((p) => `${p.in}:${p.name}`),
    ...(op.bodyFields ?? []).map((b) => `body:${b}`),
    'query:unknown',
    'header:idempotency-key',
    'header:last-event-id',
    ...(op.bodyFields ? ['body:unknownField'] : []),
  ];

  it('lists the routes to fuzz from the OpenAPI document', () => {
    expect(ops.length).toBeGreaterThan(30);
    expect(ops.map((o) => `${o.method} ${o.path}`)).toContain(
      'POST /api/v1/workflows/{workflowId}/runs',
    );
  });

  /**
   * Send a valid request of `op` with some targets replaced (or the whole body), and say what it
   * was when the answer is a 5xx.
   */
  async function sendMutated(
    op: Operation,
    mutations: ReadonlyArray<readonly [string, unknown]>,
    wholeBody?: unknown,
  ): Promise<string | undefined> {
    const pathValues = new Map<string, unknown>(
      op.parameters.filter((p) => p.in === 'path').map((p) => [p.name, validFor(p.name, op)]),
    );
    const query: Array<[string, unknown]> = [];
    const headers: Record<string, string> = { ...f.auth };
    let body: Record<string, unknown> | undefined = op.bodyFields
      ? Object.fromEntries(op.requiredBodyFields.map((k) => [k, validFor(k, op)]))
      : undefined;
    for (const [target, value] of mutations) {
      const [where, name] = target.split(/:(.*)/s) as [string, string];
      if (where === 'path') pathValues.set(name, value);
      else if (where === 'query') query.push([name, value]);
      else if (where === 'header') {
        const v = asHeaderValue(value);
        if (v !== undefined) headers[name] = v;
      } else body = { ...body, [name]: value };
    }
    let path = op.path;
    for (const [name, value] of pathValues)
      path = path.replace(`{${name}}`, encodeSegment(asText(value)));
    const qs = query.map(([k, v]) => `${k}=${encodeSegment(asText(v))}`).join('&');
    const init: RequestInit = { method: op.method, headers };
    const sent = wholeBody !== undefined ? wholeBody : body;
    if (sent !== undefined) init.body = JSON.stringify(sent) ?? 'null';
    const url = `${path}${qs ? `?${qs}` : ''}`;
    const controller = new AbortController();
    init.signal = controller.signal;
    const res = await f.app.request(url, init);
    // an event stream of a live run never ends: the status is what counts
    if (res.headers.get('content-type')?.includes('text/event-stream')) {
      controller.abort();
      await res.body?.cancel().catch(() => {});
    } else await res.text();
    if (res.status < 500) return undefined;
    return `${op.method} ${url.slice(0, 160)} ${JSON.stringify(mutations.map(([t]) => t))} body=${JSON.stringify(sent)?.slice(0, 160)} → ${res.status}`;
  }

  it(
    'every field of every route, with each value that broke servers: no 5xx',
    { timeout: 120_000 },
    async () => {
      const failures: string[] = [];
      for (const op of ops)
        for (const target of targetsOf(op))
          for (const value of EVERY_FIELD_VALUES) {
            const failure = await sendMutated(op, [[target, value]]);
            if (failure) failures.push(failure);
          }
      expect(failures).toEqual([]);
    },
  );

  it(
    'random bad values in one or two fields, or a body of the wrong shape: no 5xx',
    { timeout: 120_000 },
    async () => {
      const failures: string[] = [];
      for (const op of ops) {
        const request = fc.record({
          mutations: fc.array(fc.tuple(fc.constantFrom(...targetsOf(op)), nastyValue), {
            minLength: 1,
            maxLength: 2,
          }),
          wholeBody: op.bodyFields
            ? fc.option(nastyValue, { freq: 6, nil: undefined })
            : fc.constant(undefined),
        });
        const before = failures.length;
        await fc
          .assert(
            fc.asyncProperty(request, async (r) => {
              const failure = await sendMutated(op, r.mutations, r.wholeBody);
              if (failure) failures.push(failure);
              return failure === undefined;
            }),
            { numRuns: RUNS_PER_OPERATION, seed: 72026, endOnFailure: true },
          )
          .catch((error: unknown) => {
            // a 5xx is in `failures` already (all are reported at once); a throw is not
            if (failures.length === before)
              failures.push(`${op.method} ${op.path}: ${String(error)}`);
          });
      }
      expect(failures).toEqual([]);
    },
  );

  it('a text problem in a field is a 422 naming that field', async () => {
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/api/v1/workflows/add/runs', { idempotencyKey: 'k\u0000' }, 'idempotencyKey'],
      ['POST', '/api/v1/workflows/add/runs', { idempotencyKey: 'k\uD800' }, 'idempotencyKey'],
      ['POST', '/api/v1/schedules', { workflowId: 'add\u0000', cron: '* * * * *' }, 'workflowId'],
      ['POST', '/api/v1/webhooks', { workflowId: 'add', label: 'l\u0000' }, 'label'],
      [
        'POST',
        '/api/v1/webhooks',
        { workflowId: 'add', secret: `${'s'.repeat(20)}\u0000` },
        'secret',
      ],
      ['GET', '/api/v1/schedules/sch_%00', undefined, 'scheduleId'],
      ['GET', '/api/v1/runs?cursor=%00', undefined, 'cursor'],
      ['GET', '/api/v1/runs/run_%00/events?lastEventId=%00', undefined, 'lastEventId'],
      ['GET', '/api/v1/runs/run_%00/events', undefined, 'runId'],
    ];
    for (const [method, path, body, field] of cases) {
      const init: RequestInit = { method, headers: f.auth };
      if (body !== undefined) init.body = JSON.stringify(body);
      const res = await f.app.request(path, init);
      const answer = (await res.json()) as { error: { code: string; message: string } };
      expect({ path, field, status: res.status, code: answer.error.code }).toEqual({
        path,
        field,
        status: 422,
        code: 'invalid_input',
      });
      expect(answer.error.message).toContain(field);
    }
  });

  it('idempotency keys that differ only in a lone surrogate or U+FFFD are never one key', async () => {
    const trigger = async (idempotencyKey: string) => {
      const res = await f.app.request('/api/v1/workflows/add/runs', {
        method: 'POST',
        headers: f.auth,
        body: JSON.stringify({ idempotencyKey, input: { a: 1 } }),
      });
      return { status: res.status, body: (await res.json()) as { id?: string } };
    };
    const replacement = await trigger('fuzz-key-\uFFFD');
    const high = await trigger('fuzz-key-\uD800');
    const low = await trigger('fuzz-key-\uDC00');
    expect(replacement.status).toBe(201);
    expect([high.status, low.status]).toEqual([422, 422]);
    // U+FFFD is a character like any other: its key stays its own
    const again = await trigger('fuzz-key-\uFFFD');
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(replacement.body.id);
    const plain = await trigger('fuzz-key-?');
    expect(plain.status).toBe(201);
    expect(plain.body.id).not.toBe(replacement.body.id);
  });
});
