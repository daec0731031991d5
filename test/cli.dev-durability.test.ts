/**
 * What survives a process crash in `weft dev` (docs/semantics.md, "What survives a crash in
 * weft dev"): a run whose trigger was answered 2xx is there after `kill -9` of the process and a
 * restart on the same data folder, and goes on to finish; so is a signed webhook, whose secret
 * is sealed with the key the folder keeps (secret.key, 0600). Run with the default durability
 * (`fsync`) and with `WEFT_PGLITE_DURABILITY=os` (no flush at all: a process crash loses nothing
 * either, since every write reached the kernel before the answer).
 */
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCli, type CliProcess } from './support/cli-process.js';

const workflow = `
import { defineWorkflow } from 'weft';
export const slow = defineWorkflow<{ n: number }>('slow')
  .sleep('pause', { duration: '2s' })
  .step('done', { after: 'pause' }, () => ({ done: true }));
// Its first attempt never ends: the process dies while it runs.
export const held = defineWorkflow('held').step('hold', (_input: unknown, ctx) =>
  ctx.attempt === 1 ? new Promise<never>(() => {}) : { attempt: ctx.attempt },
);
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(['fsync', 'os'])('weft dev durability (%s)', (durability) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-dev-crash-'));
  const dataDir = join(dir, 'state');
  const running: CliProcess[] = [];
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'crash', type: 'module' }));
  writeFileSync(join(dir, 'wf.ts'), workflow);

  afterAll(async () => {
    for (const p of running) await p.stop(2000).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  async function startDev(): Promise<{ dev: CliProcess; url: string; key: string }> {
    const dev = startCli(
      ['dev', '--port', '0', '--data-dir', dataDir, '--workflows', dir, '--no-watch'],
      { cwd: dir, env: { WEFT_PGLITE_DURABILITY: durability } },
    );
    running.push(dev);
    await dev.waitFor('stdout', /http:\/\/127\.0\.0\.1:\d+/, 90_000);
    for (let i = 0; i < 100; i++) {
      try {
        const state = JSON.parse(readFileSync(join(dataDir, 'dev.json'), 'utf8')) as {
          url: string;
          apiKey: string;
          pid: number;
        };
        if (state.pid === dev.child.pid) return { dev, url: state.url, key: state.apiKey };
      } catch {
        // not written yet
      }
      await sleep(50);
    }
    throw new Error('weft dev did not write dev.json');
  }

  it('keeps a run answered 2xx and a signed webhook across kill -9 and a restart on the same folder', async () => {
    const first = await startDev();
    const auth = { authorization: `Bearer ${first.key}`, 'content-type': 'application/json' };
    const hook = await fetch(`${first.url}/api/v1/webhooks`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ workflowId: 'slow', signed: true }),
    });
    expect(hook.status).toBe(201);
    const { id: hookId, secret } = (await hook.json()) as { id: string; secret: string };
    expect(statSync(join(dataDir, 'secret.key')).mode & 0o777).toBe(0o600);

    const res = await fetch(`${first.url}/api/v1/workflows/slow/runs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ input: { n: 21 } }),
    });
    expect(res.status).toBe(201);
    const { id: runId } = (await res.json()) as { id: string };
    // no grace: the answer was sent, the process dies now
    first.dev.child.kill('SIGKILL');
    await new Promise((r) => first.dev.child.once('exit', r));

    const second = await startDev();
    const auth2 = { authorization: `Bearer ${second.key}`, 'content-type': 'application/json' };
    let run: { status: string } | undefined;
    for (let i = 0; i < 200; i++) {
      const got = await fetch(`${second.url}/api/v1/runs/${runId}`, { headers: auth2 });
      expect(got.status).toBe(200);
      run = (await got.json()) as { status: string };
      if (run.status === 'succeeded') break;
      await sleep(100);
    }
    expect(run?.status).toBe('succeeded');
    const body = JSON.stringify({ after: 'restart' });
    const delivered = await fetch(`${second.url}/hooks/${hookId}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-weft-signature': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
      },
      body,
    });
    expect(delivered.status).toBe(202);
  });

  // A step claimed by the process that died keeps a lease nobody can renew: the restarted dev
  // (which holds the folder alone) hands it back at once. Before, the step waited out the whole
  // lease (30 s) and the run looked stuck; under load CI's kill -9 above landed in that window.
  it('a step running when the process was killed runs again right after the restart, not after its lease', async () => {
    for (const p of running.splice(0)) await p.stop(2000).catch(() => {});
    const first = await startDev();
    const auth = { authorization: `Bearer ${first.key}`, 'content-type': 'application/json' };
    const res = await fetch(`${first.url}/api/v1/workflows/held/runs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ input: null }),
    });
    expect(res.status).toBe(201);
    const { id: runId } = (await res.json()) as { id: string };
    type Steps = {
      data: Array<{ stepKey: string; status: string; attempts: Array<{ status: string }> }>;
    };
    const stepsOf = async (url: string, headers: Record<string, string>) =>
      ((await (await fetch(`${url}/api/v1/runs/${runId}/steps`, { headers })).json()) as Steps)
        .data;
    for (let i = 0; i < 100; i++) {
      if ((await stepsOf(first.url, auth))[0]?.status === 'running') break;
      await sleep(50);
    }
    expect((await stepsOf(first.url, auth))[0]?.status).toBe('running');
    first.dev.child.kill('SIGKILL');
    await new Promise((r) => first.dev.child.once('exit', r));

    const second = await startDev();
    const auth2 = { authorization: `Bearer ${second.key}`, 'content-type': 'application/json' };
    const restarted = Date.now();
    let status = '';
    while (Date.now() - restarted < 10_000) {
      const got = await fetch(`${second.url}/api/v1/runs/${runId}`, { headers: auth2 });
      status = ((await got.json()) as { status: string }).status;
      if (status === 'succeeded') break;
      await sleep(100);
    }
    expect(status, 'the run finishes within 10 s of the restart (the lease is 30 s)').toBe(
      'succeeded',
    );
    const [hold] = await stepsOf(second.url, auth2);
    expect(hold!.attempts.map((a) => a.status)).toEqual(['lost', 'succeeded']);
  });
});
