/**
 * Live run events over Server-Sent Events, through a real HTTP server on a real socket and a raw
 * HTTP client: order, the end of the stream, resuming with Last-Event-ID (no loss, no repeats),
 * keep-alives, a second server process on the same database, and tenant isolation.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineWorkflow } from '../src/index.js';
import { silentLogger } from '../src/engine/logger.js';
import { createApp, startServer, type RunningServer } from '../src/server/index.js';
import { createPgExecutor } from '../src/store/pg-executor.js';
import type { RunEventRecord } from '../src/store/rows.js';
import { createStores } from '../src/store/stores.js';
import { BACKENDS } from './support/databases.js';
import { openServerFixture, type ServerFixture } from './support/server-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SseMessage {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/** A raw SSE reader over node:http: messages and comments as they arrive, and how it ended. */
class SseReader {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  status = 0;
  headers: IncomingMessage['headers'] = {};
  body = '';
  ended = false;
  private buffer = '';
  private waiters: Array<() => void> = [];
  private req: ClientRequest | undefined;

  static async open(url: string, headers: Record<string, string>): Promise<SseReader> {
    const reader = new SseReader();
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(
        url,
        { headers: { accept: 'text/event-stream', ...headers } },
        (res) => {
          reader.status = res.statusCode ?? 0;
          reader.headers = res.headers;
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => reader.feed(chunk));
          res.on('end', () => {
            reader.ended = true;
            reader.notify();
          });
          res.on('error', () => {});
          resolve();
        },
      );
      req.on('error', reject);
      req.end();
      reader.req = req;
    });
    return reader;
  }

  private feed(chunk: string): void {
    this.body += chunk;
    this.buffer += chunk;
    for (let at = this.buffer.indexOf('\n\n'); at !== -1; at = this.buffer.indexOf('\n\n')) {
      const block = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + 2);
      const message: SseMessage = { id: undefined, event: undefined, data: '' };
      let isMessage = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
        else if (line.startsWith('data: ')) {
          message.data += (isMessage ? '\n' : '') + line.slice(6);
          isMessage = true;
        } else if (line.startsWith('id: ')) message.id = line.slice(4);
        else if (line.startsWith('event: ')) message.event = line.slice(7);
      }
      if (isMessage) this.messages.push(message);
    }
    this.notify();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Wait until `predicate` holds (checked on every chunk), failing after `timeoutMs`. */
  async until(predicate: (r: SseReader) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (this.ended && !predicate(this)) throw new Error(`stream ended early:\n${this.body}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; received so far:\n${this.body}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  events(): Array<{ id: string; kind: string; stepKey: string | null }> {
    return this.messages
      .filter((m) => m.event === undefined)
      .map((m) => {
        const e = JSON.parse(m.data) as { id: string; kind: string; stepKey: string | null };
        expect(m.id).toBe(e.id);
        return e;
      });
  }

  /** Drop the connection as a client that goes away would. */
  disconnect(): void {
    this.req?.destroy();
  }
}

const stepWorkflow = defineWorkflow<number>('steady')
  .step('a', async (n) => {
    await sleep(30);
    return n + 1;
  })
  .step('b', { after: 'a' }, async (n) => {
    await sleep(30);
    return n * 2;
  })
  .step('c', { after: 'b' }, (n) => n - 1);

/** a → an approval gate → b: the run waits until the test lets it go on. */
const gatedWorkflow = defineWorkflow<number>('gated')
  .step('a', (n) => n + 1)
  .approval('gate', { after: 'a' })
  .step('b', { after: 'gate' }, () => 'done');

describe.each(BACKENDS)('run events over SSE on %s', (backend) => {
  let f: ServerFixture;
  let server: RunningServer;

  beforeAll(async () => {
    f = await openServerFixture(backend, [stepWorkflow, gatedWorkflow]);
    // A fallback poll of a minute: every wake-up in these tests has to come from NOTIFY.
    const app = createApp({
      stores: f.db.stores,
      logger: silentLogger(),
      liveEvents: { pollIntervalMs: 60_000, keepAliveMs: 150 },
    });
    server = await startServer(app, { port: 0 });
  });
  afterAll(async () => {
    await server?.close();
    await f?.close();
  });

  const url = (runId: string, query = '') =>
    `${server.url}/api/v1/runs/${encodeURIComponent(runId)}/events${query}`;
  const stored = async (runId: string): Promise<RunEventRecord[]> =>
    (await f.db.stores.runs.listRunEvents(f.environmentId, runId, 0, 10_000))!;
  const waitpointOf = async (runId: string): Promise<string> => {
    for (let i = 0; i < 400; i++) {
      const w = await f.db.stores.runs.listWaitpoints(f.environmentId, runId);
      if (w[0]?.status === 'waiting') return w[0].id;
      await sleep(25);
    }
    throw new Error(`run ${runId} never reached its approval`);
  };

  it('streams every event of a run in order, live, and closes after the terminal one', async () => {
    const { run } = await f.engine.trigger('steady', 1);
    const reader = await SseReader.open(url(run.id), f.auth);
    expect(reader.status).toBe(200);
    expect(reader.headers['content-type']).toContain('text/event-stream');
    await reader.until((r) => r.ended);
    const got = reader.events();
    const expected = await stored(run.id);
    expect(got.map((e) => e.id)).toEqual(expected.map((e) => e.id));
    expect(got.map((e) => `${e.kind}${e.stepKey ? ` ${e.stepKey}` : ''}`)).toEqual([
      'run.created',
      'step.started a',
      'step.succeeded a',
      'step.started b',
      'step.succeeded b',
      'step.started c',
      'step.succeeded c',
      'run.succeeded',
    ]);
    const ids = got.map((e) => Number(e.id));
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
    expect(reader.body).toMatch(/^retry: \d+\n\n/);
  });

  it('a client that reconnects with Last-Event-ID gets exactly the events it missed', async () => {
    const { run } = await f.engine.trigger('gated', 1);
    const first = await SseReader.open(url(run.id), f.auth);
    await first.until((r) => r.events().some((e) => e.kind === 'step.waiting'));
    first.disconnect();
    const seen = first.events();
    const lastId = seen[seen.length - 1]!.id;

    // Events happen while nobody listens: the approval completes and the run ends.
    await f.engine.completeWaitpoint(await waitpointOf(run.id), null);
    await f.engine.waitForRun(run.id);

    const second = await SseReader.open(url(run.id), { ...f.auth, 'last-event-id': lastId });
    await second.until((r) => r.ended);
    const rest = second.events();
    const all = await stored(run.id);
    expect([...seen, ...rest].map((e) => e.id)).toEqual(all.map((e) => e.id));
    // `run.waiting` commits with `step.waiting` (the reader may or may not have seen it)
    expect(rest.map((e) => e.kind).filter((k) => k !== 'run.waiting')).toEqual([
      'run.running',
      'waitpoint.completed',
      'step.started',
      'step.succeeded',
      'step.started',
      'step.succeeded',
      'run.succeeded',
    ]);

    // The same through the query string (clients that cannot set headers); the header wins.
    const middle = all[3]!.id;
    const viaQuery = await SseReader.open(url(run.id, `?lastEventId=${middle}`), f.auth);
    await viaQuery.until((r) => r.ended);
    expect(viaQuery.events().map((e) => e.id)).toEqual(all.slice(4).map((e) => e.id));
    const both = await SseReader.open(url(run.id, `?lastEventId=${middle}`), {
      ...f.auth,
      'last-event-id': all[5]!.id,
    });
    await both.until((r) => r.ended);
    expect(both.events().map((e) => e.id)).toEqual(all.slice(6).map((e) => e.id));

    // After the terminal event there is nothing to resume: 204 stops EventSource reconnecting.
    const after = await SseReader.open(url(run.id), {
      ...f.auth,
      'last-event-id': all[all.length - 1]!.id,
    });
    await after.until((r) => r.ended);
    expect(after.status).toBe(204);
    expect(after.messages).toEqual([]);
  });

  it('sends keep-alive comments while the run is idle, and ends when it is canceled', async () => {
    const { run } = await f.engine.trigger('gated', 2);
    const reader = await SseReader.open(url(run.id), f.auth);
    await reader.until((r) => r.events().some((e) => e.kind === 'step.waiting'));
    await reader.until((r) => r.comments.filter((c) => c === 'keep-alive').length >= 2, 3000);
    await f.engine.cancel(run.id);
    await reader.until((r) => r.ended);
    expect(reader.events().at(-1)?.kind).toBe('run.canceled');
  });

  it('answers 404 for unknown, malformed and other environments’ runs, 400 for a bad Last-Event-ID, 401 without a key', async () => {
    const { run } = await f.engine.trigger('steady', 3);
    const unknownRun = 'run_a0' + '0'.repeat(26);
    for (const [runId, headers] of [
      [unknownRun, f.auth],
      ['not-a-run', f.auth],
      ['dc_a0' + '0'.repeat(26), f.auth],
      [run.id, f.sibling.auth],
      [run.id, f.foreign.auth],
    ] as const) {
      const reader = await SseReader.open(url(runId), headers);
      await reader.until((r) => r.ended);
      expect(reader.status, `${runId}`).toBe(404);
      expect(reader.headers['content-type']).toContain('application/json');
      const body = JSON.parse(reader.body) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('not_found');
      expect(body.error.message).toContain('GET /api/v1/runs');
    }
    for (const bad of ['abc', '-1', '1.5', '9'.repeat(20)]) {
      const reader = await SseReader.open(url(run.id), { ...f.auth, 'last-event-id': bad });
      await reader.until((r) => r.ended);
      expect(reader.status, bad).toBe(400);
      expect(JSON.parse(reader.body)).toMatchObject({ error: { code: 'bad_request' } });
    }
    for (const caller of f.unauthorized) {
      const reader = await SseReader.open(url(run.id), caller.headers);
      await reader.until((r) => r.ended);
      expect(reader.status, caller.name).toBe(401);
      expect(JSON.parse(reader.body)).toMatchObject({
        error: { code: 'unauthorized', details: { reason: caller.reason } },
      });
    }
    await f.engine.waitForRun(run.id);
  });

  it('only watched runs are notified: a stream registers its run while open and removes it after', async () => {
    const runs = f.db.stores.runs;
    const loc = [...runs.locations.values()][0]!;
    const watchers = async (runId: string) =>
      (
        await f.db.executor.query<{ n: number }>(
          `select count(*)::int as n from ${loc.schema}.run_event_watchers where run_id = $1 and expires_at > now()`,
          [runId],
        )
      ).rows[0]!.n;
    const notified: string[] = [];
    const stop = await loc.db.listen('weft_events', (runId) => notified.push(runId));
    try {
      const unwatched = 'run_a0' + '1'.repeat(26);
      const watched = 'run_a0' + '2'.repeat(26);
      await runs.watchRunEvents([watched], 'test-watcher', 60_000);
      await f.db.executor.query(
        `insert into ${loc.schema}.run_events (run_id, kind) values ($1, 'x'), ($2, 'x'), ($2, 'y')`,
        [unwatched, watched],
      );
      await sleep(300);
      expect(notified).toEqual([watched]);
      await runs.unwatchRunEvents(watched, 'test-watcher');
      await f.db.executor.query(
        `insert into ${loc.schema}.run_events (run_id, kind) values ($1, 'z')`,
        [watched],
      );
      await sleep(300);
      expect(notified).toEqual([watched]);
    } finally {
      await stop();
    }

    const { run } = await f.engine.trigger('gated', 9);
    const reader = await SseReader.open(url(run.id), f.auth);
    await reader.until((r) => r.events().some((e) => e.kind === 'step.waiting'));
    expect(await watchers(run.id)).toBe(1);
    await f.engine.cancel(run.id);
    await reader.until((r) => r.ended);
    for (let i = 0; i < 40 && (await watchers(run.id)) > 0; i++) await sleep(25);
    expect(await watchers(run.id)).toBe(0);
  });

  it.runIf(backend === 'postgres')(
    'holds back an event while an earlier-id event of the run is uncommitted, then sends both in id order',
    async () => {
      const { run } = await f.engine.trigger('gated', 7);
      const reader = await SseReader.open(url(run.id), f.auth);
      await reader.until((r) => r.events().some((e) => e.kind === 'step.waiting'));
      const schema = f.db.stores.schemas.locations[0]!;
      const slow = new pg.Client({ connectionString: f.db.url! });
      await slow.connect();
      try {
        // A transaction with an xid takes the lower id and stays open (a parallel branch's
        // commit still in flight); another one takes a higher id and commits first.
        await slow.query('begin');
        await slow.query('select pg_current_xact_id()');
        const early = await slow.query<{ id: string }>(
          `insert into ${schema}.run_events (run_id, kind) values ($1, 'test.early') returning id::text`,
          [run.id],
        );
        const late = await f.db.executor.query<{ id: string }>(
          `insert into ${schema}.run_events (run_id, kind) values ($1, 'test.late') returning id::text`,
          [run.id],
        );
        expect(Number(early.rows[0]!.id)).toBeLessThan(Number(late.rows[0]!.id));
        await sleep(500);
        expect(reader.events().map((e) => e.kind)).not.toContain('test.late');
        await slow.query('commit');
        await reader.until((r) => r.events().some((e) => e.kind === 'test.late'), 5000);
        const kinds = reader.events().map((e) => e.kind);
        expect(kinds.slice(-2)).toEqual(['test.early', 'test.late']);
      } finally {
        await slow.end();
      }
      await f.engine.cancel(run.id);
      await reader.until((r) => r.ended);
      expect(reader.events().map((e) => e.id)).toEqual((await stored(run.id)).map((e) => e.id));
    },
  );

  it('a second server (its own stores and LISTEN connection) streams a run another engine executes', async () => {
    // PostgreSQL: a second pool and LISTEN connection on the same database, as another process
    // would have. PGlite is one process's database: a second app over the same stores.
    const secondStores =
      backend === 'postgres'
        ? createStores({ control: createPgExecutor({ connectionString: f.db.url!, max: 2 }) })
        : f.db.stores;
    const second = await startServer(
      createApp({
        stores: secondStores,
        logger: silentLogger(),
        liveEvents: { pollIntervalMs: 60_000 },
      }),
      { port: 0 },
    );
    try {
      const { run } = await f.engine.trigger('gated', 5);
      const reader = await SseReader.open(`${second.url}/api/v1/runs/${run.id}/events`, f.auth);
      await reader.until((r) => r.events().some((e) => e.kind === 'step.waiting'));
      const before = reader.events().length;
      const started = Date.now();
      await f.engine.completeWaitpoint(await waitpointOf(run.id), { ok: true });
      await reader.until((r) => r.ended);
      // Woken by NOTIFY, not by the minute-long poll.
      expect(Date.now() - started).toBeLessThan(5000);
      expect(reader.events().length).toBeGreaterThan(before);
      expect(reader.events().map((e) => e.id)).toEqual((await stored(run.id)).map((e) => e.id));
    } finally {
      await second.close();
      if (secondStores !== f.db.stores) await secondStores.close();
    }
  });
});
