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
