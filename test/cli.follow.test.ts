/**
 * The CLI's live and control commands as a user runs them (a child process through tsx) against
 * an in-process server on a real socket: `weft runs follow`, `weft trigger --follow`,
 * `weft runs cancel`, `weft runs resume`, `weft waitpoints complete`, and their exit statuses.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TerminalError, defineWorkflow } from '../src/index.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import { ApiClient } from '../src/cli/api-client.js';
import { followRun, parseSse } from '../src/cli/follow.js';
import { runCli } from './support/cli-process.js';
import { openServerFixture, type ServerFixture } from './support/server-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const steady = defineWorkflow<number>('steady')
  .step('a', async (n) => {
    await sleep(20);
    return n + 1;
  })
  .step('b', { after: 'a' }, (n) => n * 2);
const gated = defineWorkflow<number>('gated')
  .step('a', (n) => n + 1)
  .approval('gate', { after: 'a' })
  .step('b', { after: 'gate' }, () => 'done');
const broken = defineWorkflow('broken').step('boom', { retry: { maxAttempts: 1 } }, () => {
  throw new TerminalError('the disk is full');
});
const fixable = defineWorkflow('fixable').step(
  'flaky',
  { retry: { maxAttempts: 1 }, onExhausted: 'pause' },
  () => {
    throw new Error('not yet');
  },
);

describe('weft runs follow, trigger --follow and the control commands', () => {
  let f: ServerFixture;
  let server: RunningServer;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    f = await openServerFixture('pglite', [steady, gated, broken, fixable]);
    server = await startServer(f.app, { port: 0 });
    dir = mkdtempSync(join(tmpdir(), 'weft-follow-'));
    env = { WEFT_URL: server.url, WEFT_API_KEY: f.auth.authorization!.slice('Bearer '.length) };
  });
  afterAll(async () => {
    await server?.close();
    await f?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) => runCli(args, { cwd: dir, env, timeoutMs: 30_000 });

  it('follows a run live through an approval to its end, exit 0', async () => {
    const { run } = await f.engine.trigger('gated', 1);
    const following = cli('runs', 'follow', run.id);
    let token: string | undefined;
    for (let i = 0; i < 400 && !token; i++) {
      const [w] = await f.db.stores.runs.listWaitpoints(f.environmentId, run.id);
      if (w?.status === 'waiting') token = w.id;
      else await sleep(25);
    }
    // Give the follower time to be connected and waiting, so the rest arrives live.
    await sleep(1500);
    const completed = await cli('waitpoints', 'complete', token!, '--payload', '{"ok":true}');
    expect(completed.stderr).toBe('');
    expect(completed.code).toBe(0);
    expect(completed.stdout).toContain(`Completed waitpoint ${token}`);
    const result = await following;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toContain(`Following run ${run.id} of gated`);
    const body = lines.slice(1).map((l) => l.replace(/^\d\d:\d\d:\d\d\.\d{3}\s+/, ''));
    expect(body[0]).toBe('run  queued');
    expect(body.slice(1, 4)).toEqual([
      'a  running',
      expect.stringMatching(/^a {2}done in \d+ms$/),
      'gate  running',
    ]);
    expect(body[4]).toBe(
      `gate  waiting  approval: weft waitpoints complete ${token} --payload '{…}'`,
    );
    expect(body).toContain('run  waitpoint completed');
    expect(body).toContainEqual(expect.stringMatching(/^b {2}done in \d+ms$/));
    expect(lines.at(-1)).toMatch(new RegExp(`^Run ${run.id} succeeded in `));
  });

  it('trigger --follow starts and shows a run; a failed run exits 1 with its error', async () => {
    const ok = await cli('trigger', 'steady', '--input', '20', '--follow');
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/a {2}done in \d+ms\n.*b {2}running\n.*b {2}done in/);
    expect(ok.stdout).toMatch(/Run run_\w+ succeeded in/);
    // recorded as a CLI trigger (it was recorded as `api`)
    const okId = /Run (run_\w+) succeeded/.exec(ok.stdout)![1]!;
    const okRun = await f.db.stores.runs.getRun(f.environmentId, okId);
    expect(okRun?.trigger.kind).toBe('cli');

    const bad = await cli('trigger', 'broken', '--follow');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('boom  failed in');
    expect(bad.stdout).toContain('TerminalError: the disk is full');
    expect(bad.stdout).toMatch(/run {2}failed at step boom: the disk is full/);
    expect(bad.stdout).toMatch(/Run run_\w+ failed after .*Details: weft runs show run_/);

    const json = await cli('trigger', 'steady', '--input', '1', '--follow', '--json');
    expect(json.code).toBe(0);
    const events = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; id: string });
    expect(events[0]!.kind).toBe('run.created');
    expect(events.at(-1)!.kind).toBe('run.succeeded');
    expect(events).toHaveLength(6);
  });

  it('following a paused run stops with the resume command; resume and cancel work and explain refusals', async () => {
    const { run } = await f.engine.trigger('fixable', null);
    expect((await f.engine.waitForRun(run.id)).status).toBe('paused');
    const follow = await cli('runs', 'follow', run.id);
    expect(follow.code).toBe(1);
    expect(follow.stdout).toContain(`weft runs resume ${run.id}`);

    const badVersion = await cli('runs', 'resume', run.id, '--version', 'latest');
    expect(badVersion.code).toBe(1);
    expect(badVersion.stderr).toContain('--version must be "original"');
    const resumed = await cli('runs', 'resume', run.id);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain(`Resumed run ${run.id}`);
    expect((await f.engine.waitForRun(run.id)).status).toBe('paused');

    const canceled = await cli('runs', 'cancel', run.id);
    expect(canceled.code).toBe(0);
    expect(canceled.stdout).toContain(`Canceled run ${run.id} of fixable (status canceled)`);
    const again = await cli('runs', 'cancel', run.id);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('run_not_active');
    const notPaused = await cli('runs', 'resume', run.id);
    expect(notPaused.code).toBe(1);
    expect(notPaused.stderr).toContain('run_not_paused');
    const followCanceled = await cli('runs', 'follow', run.id);
    expect(followCanceled.code).toBe(1);
    expect(followCanceled.stdout).toContain('run  canceled');
  });

  it('at a terminal, redraws a step table in place as steps go queued → running → done', async () => {
    const api = new ApiClient({
      url: server.url,
      apiKey: env.WEFT_API_KEY!,
      from: 'test',
      keyFrom: 'test',
    });
    const { run } = await f.engine.trigger('steady', 3);
    let screen = '';
    const tty = {
      isTTY: true,
      columns: 100,
      write: (chunk: string) => {
        screen += chunk;
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    await followRun(api, run.id, {}, tty);
    expect(process.exitCode ?? 0).toBe(0);
    // Each redraw moves the cursor up over the previous frame and clears to the end (ESC [ n A, ESC [ J).
    const esc = String.fromCharCode(27);
    const frames = screen.split(new RegExp(`${esc}\\[\\d+A${esc}\\[J`));
    expect(frames.length).toBeGreaterThan(3);
    expect(frames[0]).toMatch(/· a +queued/);
    expect(frames[0]).toMatch(/· b +queued/);
    expect(frames.some((fr) => /▶ a +running/.test(fr) && /· b +queued/.test(fr))).toBe(true);
    const last = frames.at(-1)!;
    expect(last).toMatch(/✔ a +done +\d+ms/);
    expect(last).toMatch(/✔ b +done +\d+ms/);
    expect(last).toContain(`Run ${run.id} of steady: succeeded`);
    expect(last).toMatch(new RegExp(`Run ${run.id} succeeded in `));
  });

  it('parses SSE split anywhere across chunks, CRLF and multi-line data included', async () => {
    const wire =
      'retry: 500\r\n\r\n: keep-alive\n\nid: 7\ndata: {"a":\ndata: 1}\n\nevent: error\ndata: x\n\n';
    for (const size of [1, 3, 7, wire.length]) {
      const bytes = new TextEncoder().encode(wire);
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += size) controller.enqueue(bytes.slice(i, i + size));
          controller.close();
        },
      });
      const got = [];
      for await (const m of parseSse(body)) got.push(m);
      expect(got, `chunks of ${size}`).toEqual([
        { retry: 500 },
        { id: '7', data: '{"a":\n1}' },
        { event: 'error', data: 'x' },
      ]);
    }
  });

  it('unknown runs and tokens, and bad payload JSON, are errors that say what to do', async () => {
    const missing = await cli('runs', 'follow', 'run_a0' + '0'.repeat(26));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('not_found');
    const badJson = await cli('waitpoints', 'complete', 'wp_a0' + '0'.repeat(26), '--payload', '{');
    expect(badJson.code).toBe(1);
    expect(badJson.stderr).toContain('--payload is not valid JSON');
    const unknown = await cli('waitpoints', 'complete', 'wp_a0' + '0'.repeat(26));
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('not_found: Waitpoint token');
  });
});
