/**
 * Production shape, as real processes on PostgreSQL: two `weft server`s and two `weft worker`s
 * over one database, as behind a load balancer. A key made with `weft keys create --scope admin`
 * creates another key over the API; a run triggered through one server is followed (SSE) through
 * the other and succeeds. Then a server is SIGTERMed mid-stream while requests are in flight:
 * every request is answered (or refused before it reached the server, and retried on the other
 * with the same idempotency key), the stream ends with a `retry:` hint, and the client resumes on
 * the other server with `Last-Event-ID` — every event exactly once.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, type CliProcess } from './support/cli-process.js';
import { createPgDatabase } from './support/databases.js';

const WORKFLOW = `import { defineWorkflow } from 'weft';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Eight steps of ~150 ms: long enough to be mid-stream when a server is stopped.
let wf = defineWorkflow<{ n: number }>('slow-count').step('s0', async ({ n }) => {
  await pause(150);
  return n;
});
for (let i = 1; i < 8; i++) {
  wf = wf.step(\`s\${i}\`, { after: \`s\${i - 1}\` }, async (n: number) => {
    await pause(150);
    return n + 1;
  });
}
export default wf;
`;

interface SseEvent {
  id: string;
  kind: string;
}

/**
 * Read a run's event stream until it ends. Returns the events, whether the stream ended on a
 * terminal event, and the `retry:` hints seen (a drained stream ends with a short one).
 */
async function readStream(
  url: string,
  headers: Record<string, string>,
  onEvent: (event: SseEvent) => void = () => {},
): Promise<{ status: number; events: SseEvent[]; retries: number[]; terminal: boolean }> {
  const response = await fetch(url, { headers: { ...headers, accept: 'text/event-stream' } });
  const events: SseEvent[] = [];
  const retries: number[] = [];
  if (response.status !== 200 || !response.body)
    return { status: response.status, events, retries, terminal: false };
  const decoder = new TextDecoder();
  let buffer = '';
  let terminal = false;
  try {
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id: string | undefined;
        let data: string | undefined;
        for (const line of message.split('\n')) {
          if (line.startsWith('id:')) id = line.slice(3).trim();
          else if (line.startsWith('data:')) data = line.slice(5).trim();
          else if (line.startsWith('retry:')) retries.push(Number(line.slice(6).trim()));
        }
        if (id !== undefined && data !== undefined) {
          const event = { id, kind: (JSON.parse(data) as { kind: string }).kind };
          events.push(event);
          onEvent(event);
          if (['run.succeeded', 'run.failed', 'run.canceled'].includes(event.kind)) terminal = true;
        }
      }
    }
  } catch {
    // The connection was cut: what arrived is what counts; the caller resumes after it.
  }
  return { status: 200, events, retries, terminal };
}

/** A listening URL from a server's JSON log line. */
async function listeningUrl(server: CliProcess): Promise<string> {
  const match = await server.waitFor(
    'stdout',
    /"url":"(http:\/\/[^"]+)"[^\n]*server listening/,
    60_000,
  );
  return match[1]!;
}

describe('weft server ×2 and weft worker ×2 on PostgreSQL', () => {
  let db: { url: string; drop: () => Promise<void> };
  let dir: string;
  const processes: CliProcess[] = [];
  let urls: [string, string];
  let servers: [CliProcess, CliProcess];
  let adminKey: string;
  let key: string;
  const env = () => ({ DATABASE_URL: db.url });

  beforeAll(async () => {
    db = await createPgDatabase('mp');
    dir = mkdtempSync(join(tmpdir(), 'weft-mp-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'mp-test', type: 'module' }));
    writeFileSync(join(dir, 'slow-count.ts'), WORKFLOW);

    const migrated = await runCli(['migrate'], { cwd: dir, env: env(), timeoutMs: 60_000 });
    expect(migrated.code, migrated.stderr).toBe(0);
    const created = await runCli(
      ['keys', 'create', '--scope', 'admin', '--environment', 'prod', '--label', 'ops', '--json'],
      { cwd: dir, env: env(), timeoutMs: 60_000 },
    );
    expect(created.code, created.stderr).toBe(0);
    const made = JSON.parse(created.stdout) as { token?: string; key?: string };
    adminKey = (made.key ?? made.token)!;

    const start = (args: string[]) => {
      const p = startCli(args, { cwd: dir, env: env() });
      processes.push(p);
      return p;
    };
    const serverArgs = ['server', '--port', '0', '--drain-timeout', '10s'];
    servers = [start(serverArgs), start(serverArgs)];
    const workers = [1, 2].map(() =>
      start(['worker', '--workflows', './slow-count.ts', '--environment', 'prod']),
    );
    urls = [await listeningUrl(servers[0]), await listeningUrl(servers[1])];
    for (const w of workers) await w.waitFor('stdout', /worker started/, 60_000);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop(5_000)));
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates a key over the API with the admin key, triggers through one server and follows the run through the other', async () => {
    const created = await fetch(`${urls[0]}/api/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ label: 'app', scopes: ['trigger'] }),
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const made = (await created.json()) as { key: string; scopes: string[] };
    expect(made.scopes).toEqual(['trigger']);
    key = made.key;
    const auth = { authorization: `Bearer ${key}` };

    // A trigger key cannot make keys: the scope is enforced on every server.
    const refused = await fetch(`${urls[1]}/api/v1/keys`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(refused.status).toBe(403);

    const triggered = await fetch(`${urls[0]}/api/v1/workflows/slow-count/runs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { n: 1 } }),
    });
    expect(triggered.status).toBe(201);
    const { id } = (await triggered.json()) as { id: string };

    const stream = await readStream(`${urls[1]}/api/v1/runs/${id}/events`, auth);
    expect(stream.status).toBe(200);
    expect(stream.terminal).toBe(true);
    expect(stream.events.at(-1)!.kind).toBe('run.succeeded');
    expect(stream.events.filter((e) => e.kind === 'step.succeeded')).toHaveLength(8);

    const run = (await (await fetch(`${urls[0]}/api/v1/runs/${id}`, { headers: auth })).json()) as {
      status: string;
    };
    expect(run.status).toBe('succeeded');
  });

  it('SIGTERM on a server mid-stream: requests in flight are answered, none is lost, and the stream resumes on the other server', async () => {
    const auth = { authorization: `Bearer ${key}` };
    const [a, b] = urls;
    const triggered = await fetch(`${a}/api/v1/workflows/slow-count/runs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { n: 100 } }),
    });
    const { id } = (await triggered.json()) as { id: string };

    // A trigger whose body is still arriving when the signal comes: it must be served in full.
    const body = JSON.stringify({ input: { n: 7 }, idempotencyKey: 'slow-upload' });
    const slowUpload = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(
        `${b}/api/v1/workflows/slow-count/runs`,
        {
          method: 'POST',
          headers: {
            ...auth,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => req.end(body.slice(10)), 1_500);
    });

    // Triggers keep coming, alternating servers, each retried on the other server with the
    // same idempotency key when the connection fails (what a client or balancer does).
    const outcomes: Array<{ key: string; status: number; via: string; retried: boolean }> = [];
    const fire = async (i: number) => {
      const idempotencyKey = `burst-${i}`;
      const order = i % 2 === 0 ? [b, a] : [a, b];
      for (const [attempt, base] of order.entries()) {
        try {
          const r = await fetch(`${base}/api/v1/workflows/slow-count/runs`, {
            method: 'POST',
            headers: { ...auth, 'content-type': 'application/json' },
            body: JSON.stringify({ input: { n: i }, idempotencyKey }),
          });
          outcomes.push({ key: idempotencyKey, status: r.status, via: base, retried: attempt > 0 });
          return;
        } catch (error) {
          if (attempt === order.length - 1) throw error;
        }
      }
    };

    let sigterm: Promise<number | null> | undefined;
    const burst: Promise<void>[] = [];
    const first = await readStream(`${b}/api/v1/runs/${id}/events`, auth, (event) => {
      if (sigterm || !event.kind.startsWith('step.succeeded')) return;
      // Mid-stream (the first step done, seven to go): stop server b while requests fly.
      for (let i = 0; i < 10; i++) burst.push(fire(i));
      servers[1].child.kill('SIGTERM');
      sigterm = new Promise((resolve) => servers[1].child.once('exit', resolve));
      for (let i = 10; i < 30; i++)
        burst.push(new Promise((r) => setTimeout(r, i * 20)).then(() => fire(i)));
    });
    expect(sigterm, 'the stream ended before the first step succeeded').toBeDefined();
    expect(first.terminal).toBe(false);
    // The drained stream told EventSource to come back soon (it comes back through the balancer).
    expect(first.retries.at(-1)).toBeLessThan(1000);

    // Resume on the other server after the last event received.
    const lastId = first.events.at(-1)!.id;
    const rest = await readStream(`${a}/api/v1/runs/${id}/events`, {
      ...auth,
      'last-event-id': lastId,
    });
    expect(rest.terminal).toBe(true);
    const all = [...first.events, ...rest.events];
    // Every event exactly once, in order: the same list a fresh stream from the start gives.
    const full = await readStream(`${a}/api/v1/runs/${id}/events`, auth);
    expect(all.map((e) => e.id)).toEqual(full.events.map((e) => e.id));
    expect(all.at(-1)!.kind).toBe('run.succeeded');

    // The draining server finished what it had and exited cleanly.
    expect(await sigterm).toBe(0);
    const upload = await slowUpload;
    expect(upload.status, upload.text).toBe(201);
    await Promise.all(burst);
    expect(outcomes).toHaveLength(30);
    for (const o of outcomes) expect([200, 201], JSON.stringify(o)).toContain(o.status);
    // Each idempotency key became exactly one run, and every run finishes.
    const ids = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const r = await fetch(`${a}/api/v1/workflows/slow-count/runs`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ input: { n: i }, idempotencyKey: `burst-${i}` }),
      });
      const run = (await r.json()) as { id: string; deduplicated?: boolean };
      expect(r.status, `burst-${i} was not created before`).toBe(200);
      expect(run.deduplicated).toBe(true);
      ids.add(run.id);
    }
    expect(ids.size).toBe(30);
    const deadline = Date.now() + 60_000;
    for (const runId of ids) {
      for (;;) {
        const run = (await (
          await fetch(`${a}/api/v1/runs/${runId}`, { headers: auth })
        ).json()) as {
          status: string;
        };
        if (run.status === 'succeeded') break;
        expect(['queued', 'running']).toContain(run.status);
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }, 150_000);
});
