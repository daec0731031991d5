/**
 * `weft runs rerun`: the command against a real server over HTTP — the plan table, a dry run that
 * starts nothing, a started rerun, and the API's error passed through.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRunsRerun } from '../src/cli/rerun-command.js';
import { defineWorkflow } from '../src/index.js';
import { startServer, type RunningServer } from '../src/server/serve.js';
import { BACKENDS } from './support/databases.js';
import { openServerFixture, type ServerFixture } from './support/server-fixture.js';
import { captureStdout as capture } from './support/capture.js';

const wf = defineWorkflow<number>('cli-rerun')
  .step('a', (x) => x + 1)
  .step('b', { after: 'a' }, (x) => x * 2);

describe.each(BACKENDS)('weft runs rerun on %s', (backend) => {
  let f: ServerFixture;
  let server: RunningServer;
  let source: string;
  let apiKey: string;
  beforeAll(async () => {
    f = await openServerFixture(backend, [wf]);
    server = await startServer(f.app, { port: 0 });
    apiKey = f.auth.authorization!.slice('Bearer '.length);
    source = (await f.engine.trigger('cli-rerun', 1)).run.id;
    await f.engine.waitForRun(source);
  });
  afterAll(async () => {
    await server?.close();
    await f?.close();
  });

  it('--dry-run prints the plan and starts nothing; without it, starts the rerun', async () => {
    const dry = await capture(() =>
      runRunsRerun(source, { url: server.url, apiKey, from: 'b', dryRun: true }),
    );
    expect(dry).toMatch(/^STEP\s+FATE\s+REASON/m);
    expect(dry).toMatch(/^a\s+reuse/m);
    expect(dry).toMatch(/^b\s+rerun\s+target/m);
    expect(dry).toContain('Dry run: 1 to rerun, 1 reused, 0 skipped; nothing was started.');

    const started = await capture(() =>
      runRunsRerun(source, { url: server.url, apiKey, from: 'b', version: 'current' }),
    );
    const id = /Started run (run_\S+)/.exec(started)?.[1];
    expect(id).toBeDefined();
    expect((await f.engine.waitForRun(id!)).rerunOf).toBe(source);
  });

  it('passes the API error through (422 unknown step), and checks --version', async () => {
    await expect(runRunsRerun(source, { url: server.url, apiKey, from: 'zz' })).rejects.toThrow(
      /unknown_step.*`zz`/s,
    );
    await expect(
      runRunsRerun(source, { url: server.url, apiKey, from: 'b', version: 'latest' }),
    ).rejects.toThrow(/expected "original" or "current"/);
  });
});

let down = true;
const flaky = defineWorkflow<number>('cli-bulk')
  .step('load', (x: number) => x)
  .step('charge', { after: 'load', retry: { maxAttempts: 1 } }, (x: number) => {
    if (down) throw new Error('gateway down');
    return x * 2;
  });

describe.each(BACKENDS)('weft runs rerun --failed on %s', (backend) => {
  let f: ServerFixture;
  let server: RunningServer;
  let apiKey: string;
  beforeAll(async () => {
    f = await openServerFixture(backend, [flaky]);
    server = await startServer(f.app, { port: 0 });
    apiKey = f.auth.authorization!.slice('Bearer '.length);
    down = true;
    for (let i = 0; i < 3; i++) {
      const { run } = await f.engine.trigger('cli-bulk', i);
      expect((await f.engine.waitForRun(run.id)).status).toBe('failed');
    }
  });
  afterAll(async () => {
    await server?.close();
    await f?.close();
  });

  it('--dry-run prints the summary; then reruns every failed run and follows it to the end', async () => {
    const connection = { url: server.url, apiKey };
    const dry = await capture(() =>
      runRunsRerun(undefined, {
        ...connection,
        failed: true,
        workflow: 'cli-bulk',
        since: '1h',
        dryRun: true,
      }),
    );
    expect(dry).toMatch(/^STEP\s+RERUN\s+REUSE\s+SKIP/m);
    expect(dry).toMatch(/^load\s+0\s+3\s+0/m);
    expect(dry).toMatch(/^charge\s+3\s+0\s+0/m);
    expect(dry).toContain(
      'Dry run: 3 failed runs of cli-bulk, rerun from charge (3); nothing was started.',
    );

    down = false;
    const out = await capture(() =>
      runRunsRerun(undefined, { ...connection, failed: true, workflow: 'cli-bulk', pollMs: 50 }),
    );
    expect(out).toMatch(/^Bulk rerun bulk_\S+: 3 runs of cli-bulk\./m);
    expect(out).toMatch(/Bulk rerun bulk_\S+ succeeded: 3 of 3 runs rerun\./);
  });

  it('says what is missing or wrong before calling the server', async () => {
    const connection = { url: server.url, apiKey };
    await expect(runRunsRerun(undefined, { ...connection, failed: true })).rejects.toThrow(
      /--failed needs --workflow/,
    );
    await expect(
      runRunsRerun(undefined, {
        ...connection,
        failed: true,
        workflow: 'cli-bulk',
        since: 'yesterday',
      }),
    ).rejects.toThrow(/--since is "yesterday": expected a time .* or a duration/);
    await expect(
      runRunsRerun('run_x', { ...connection, failed: true, workflow: 'cli-bulk' }),
    ).rejects.toThrow(/drop the run id run_x/);
    await expect(runRunsRerun(undefined, { ...connection })).rejects.toThrow(
      /Name a run and a step/,
    );
    await expect(
      runRunsRerun(undefined, { ...connection, failed: true, workflow: 'nope' }),
    ).rejects.toThrow(/`nope` is not a workflow/);
  });
});
