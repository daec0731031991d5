/**
 * `weft runs show` lists the tokens of waiting approvals (the example says it does), `weft
 * waitpoints list [--run]` finds what runs wait on, and control steps show their attempts without
 * the `/2147483647` of an unbounded budget. Against a real server over HTTP, on both backends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRunsShow } from '../src/cli/api-commands.js';
import { runWaitpointsList } from '../src/cli/control-commands.js';
import { defineWorkflow } from '../src/index.js';
import { startServer, type RunningServer } from '../src/server/serve.js';
import { captureStdout as capture } from './support/capture.js';
import { BACKENDS } from './support/databases.js';
import { openServerFixture, type ServerFixture } from './support/server-fixture.js';

const review = defineWorkflow('cli-review')
  .step('draft', () => 'text')
  .approval('sign-off', { after: 'draft' })
  .step('publish', { after: 'sign-off' }, () => 'published');

describe.each(BACKENDS)('weft waitpoints on %s', (backend) => {
  let f: ServerFixture;
  let server: RunningServer;
  let apiKey: string;
  beforeAll(async () => {
    f = await openServerFixture(backend, [review]);
    server = await startServer(f.app, { port: 0 });
    apiKey = f.auth.authorization!.slice('Bearer '.length);
  });
  afterAll(async () => {
    await server?.close();
    await f?.close();
  });

  it('runs show lists the approval token; waitpoints list finds it with and without --run', async () => {
    const { run } = await f.engine.trigger('cli-review', null);
    let token: string | undefined;
    for (let i = 0; i < 200 && !token; i++) {
      await new Promise((r) => setTimeout(r, 25));
      const status = (await f.db.stores.runs.getRun(f.environmentId, run.id))!.status;
      const [w] = await f.db.stores.runs.listWaitpoints(f.environmentId, run.id);
      if (status === 'waiting' && w) token = w.id;
    }
    expect(token).toMatch(/^wp_/);

    const shown = await capture(() => runRunsShow(run.id, { url: server.url, apiKey }));
    expect(shown).toMatch(/^Status\s+waiting$/m);
    expect(shown).toContain('Waiting on');
    expect(shown).toContain(`sign-off (approval): weft waitpoints complete ${token}`);
    // the approval step: one attempt, no "/2147483647"
    expect(shown).toMatch(/^sign-off\s+waiting\s+1\s/m);
    expect(shown).not.toContain('2147483647');
    expect(shown).toMatch(/^draft\s+succeeded\s+1\/3\s/m);

    const all = await capture(() => runWaitpointsList({ url: server.url, apiKey }));
    expect(all).toMatch(/^TOKEN\s+KIND\s+RUN\s+STEP\s+STATUS/m);
    expect(all).toContain(token!);
    const one = await capture(() => runWaitpointsList({ url: server.url, apiKey, run: run.id }));
    expect(one).toContain(`${token}  approval  ${run.id}  sign-off  waiting`);

    await f.engine.completeWaitpoint(token!, null);
    await f.engine.waitForRun(run.id);
    const none = await capture(() => runWaitpointsList({ url: server.url, apiKey, run: run.id }));
    expect(none).toBe(`Run ${run.id} has no waiting waitpoint.\n`);
    const history = await capture(() =>
      runWaitpointsList({ url: server.url, apiKey, run: run.id, all: true }),
    );
    expect(history).toMatch(
      new RegExp(`${token}\\s+approval\\s+${run.id}\\s+sign-off\\s+completed`),
    );
  });
});
