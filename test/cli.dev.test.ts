/**
 * `weft dev` end to end, as a user runs it: boot on a fresh data folder with the user's own
 * workflow folder, use the printed URL and key, trigger and inspect runs with the CLI, edit the
 * workflow and see the next run use the new version, break the module and see a clear error
 * while the server keeps serving, then stop it with SIGTERM.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, type CliProcess } from './support/cli-process.js';

const workflowSource = (greeting: string) => `
import { defineWorkflow } from 'weft';
import { punctuate } from './helpers/punctuate.js';

export const greet = defineWorkflow<{ name: string }>('greet')
  .step('compose', ({ name }) => '${greeting}, ' + name)
  .step('finish', { after: 'compose' }, (text) => ({ greeting: punctuate(text) }));
`;

interface RunView {
  id: string;
  status: string;
  versionId: string;
  output: unknown;
}

describe('weft dev', () => {
  let dir: string;
  let dataDir: string;
  let dev: CliProcess;
  const cli = (...args: string[]) => runCli([...args, '--data-dir', dataDir], { cwd: dir });
  const trigger = async (name: string): Promise<RunView> => {
    const result = await cli(
      'trigger',
      'greet',
      '--input',
      JSON.stringify({ name }),
      '--wait',
      '--timeout',
      '20s',
      '--json',
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout) as RunView;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cli-dev-'));
    dataDir = join(dir, 'state');
    // npm's default scope (CommonJS): workflow .ts files still load as ES modules.
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'cli-dev-test', type: 'commonjs' }),
    );
    writeFileSync(join(dir, 'wf.ts'), workflowSource('Hello'));
    rmSync(join(dir, 'helpers'), { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'helpers')));
    writeFileSync(
      join(dir, 'helpers', 'punctuate.ts'),
      `export const punctuate = (s: string): string => s + '!';\n`,
    );
    dev = startCli(['dev', '--port', '0', '--data-dir', dataDir, '--workflows', dir], { cwd: dir });
    await dev.waitFor('stdout', /Watching the workflow files/, 60_000);
  });

  afterAll(async () => {
    await dev?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints the URL, the API key and a curl example, and keeps the key in dev.json (0600)', () => {
    const state = JSON.parse(readFileSync(join(dataDir, 'dev.json'), 'utf8')) as {
      url: string;
      apiKey: string;
    };
    expect(state.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(state.apiKey).toMatch(/^weft_dev_[0-9A-Za-z]{32}$/);
    expect(statSync(join(dataDir, 'dev.json')).mode & 0o777).toBe(0o600);
    const out = dev.stdout();
    expect(out).toContain(`${state.url}/api/v1`);
    expect(out).toContain(state.apiKey);
    expect(out).toContain(`curl -X POST ${state.url}/api/v1/workflows/greet/runs`);
    expect(out).toContain('greet v1');
  });

  it('every page the banner links answers (the /api/v1 link was a 404)', async () => {
    const state = JSON.parse(readFileSync(join(dataDir, 'dev.json'), 'utf8')) as {
      url: string;
      apiKey: string;
    };
    const banner = dev.stdout().split('Try it:')[0]!;
    const links = [...banner.matchAll(/https?:\/\/[^\s#)]+/g)].map((m) => m[0]);
    expect(links.length).toBeGreaterThan(1);
    for (const link of links) {
      const res = await fetch(link, { headers: { authorization: `Bearer ${state.apiKey}` } });
      await res.arrayBuffer();
      expect({ link, status: res.status }).toEqual({ link, status: 200 });
    }
  });

  it('runs a workflow triggered with `weft trigger`, shown by `weft runs show` and `weft runs list`', async () => {
    const run = await trigger('Ada');
    expect(run).toMatchObject({ status: 'succeeded', output: { greeting: 'Hello, Ada!' } });

    const shown = await cli('runs', 'show', run.id);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/Status\s+succeeded/);
    expect(shown.stdout).toMatch(/compose\s+succeeded\s+1\/3/);
    expect(shown.stdout).toContain('"greeting": "Hello, Ada!"');

    const json = JSON.parse((await cli('runs', 'show', run.id, '--json')).stdout) as {
      steps: Array<{ stepKey: string }>;
    };
    expect(json.steps.map((s) => s.stepKey)).toEqual(['compose', 'finish']);

    const listed = await cli('runs', 'list', '--workflow', 'greet');
    expect(listed.stdout).toContain(run.id);
    expect(listed.stdout.split('\n')[0]).toMatch(/^RUN\s+WORKFLOW\s+STATUS/);
  });

  it('reloads an edited workflow file: a new version is registered and used by the next run', async () => {
    const before = await trigger('Grace');
    writeFileSync(join(dir, 'wf.ts'), workflowSource('Howdy'));
    await dev.waitFor('stderr', /workflow `greet` v2 registered/);
    const after = await trigger('Grace');
    expect(after.output).toEqual({ greeting: 'Howdy, Grace!' });
    expect(after.versionId).not.toBe(before.versionId);
  });

  it('reloads when a local file the workflow imports changes', async () => {
    writeFileSync(
      join(dir, 'helpers', 'punctuate.ts'),
      `export const punctuate = (s: string): string => s + '?!';\n`,
    );
    // A version hashes each step's own code: the helper's change reloads the code, same version.
    await dev.waitFor('stderr', /reloaded: no workflow definition changed \(greet v2\)/);
    expect((await trigger('Linus')).output).toEqual({ greeting: 'Howdy, Linus?!' });
  });

  it('reports a broken module clearly and keeps the previous version running', async () => {
    writeFileSync(join(dir, 'wf.ts'), `${workflowSource('Broken')}\nexport const oops = ;\n`);
    const [line] = await dev.waitFor('stderr', /could not load workflows from .*wf\.ts.*\n.*\n/);
    expect(line).toContain(
      '(keeping the previous version of `greet` running; save the file to retry)',
    );
    expect(line).toMatch(/Transform failed[\s\S]*wf\.ts:\d+:\d+/);
    expect(line).not.toContain('weft-gen');
    // still serving, with the last good version
    expect((await trigger('Barbara')).output).toEqual({ greeting: 'Howdy, Barbara?!' });

    writeFileSync(join(dir, 'wf.ts'), workflowSource('Welcome'));
    await dev.waitFor('stderr', /workflow `greet` v3 registered/);
    expect((await trigger('Barbara')).output).toEqual({ greeting: 'Welcome, Barbara?!' });
  });

  it('picks up a new module added to the workflow folder', async () => {
    writeFileSync(
      join(dir, 'second.ts'),
      `import { defineWorkflow } from 'weft';\nexport default defineWorkflow<number>('double').step('twice', (n) => n * 2);\n`,
    );
    await dev.waitFor('stderr', /workflow `double` v1 registered/);
    const result = await cli('trigger', 'double', '--input', '21', '--wait', '--json');
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'succeeded', output: 42 });
  });

  it('refuses a second `weft dev` on the same data folder, naming the running one', async () => {
    const second = await cli('dev', '--port', '0', '--workflows', dir);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/is in use by `weft dev` \(pid \d+\)/);
  });

  it('stops gracefully on SIGTERM and releases the data folder', async () => {
    const code = await dev.stop();
    expect(code).toBe(0);
    expect(dev.stderr()).toContain('SIGTERM: shutting down');
    expect(existsSync(join(dataDir, 'dev.lock'))).toBe(false);
    // the clients now say which URL is down and how to start it
    const down = await cli('runs', 'list');
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(
      /cannot reach the Weft API at http:\/\/127\.0\.0\.1:\d+ \(connection refused\)\. .*start it again with `weft dev`/,
    );
  });
});

describe('weft dev with a weft.config.ts', () => {
  let dir: string;
  let dev: CliProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cli-config-'));
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'cli-config-test', type: 'module' }),
    );
    await import('node:fs/promises').then((fs) =>
      fs.mkdir(join(dir, 'flows', 'billing'), { recursive: true }),
    );
    writeFileSync(
      join(dir, 'flows', 'billing', 'refund.wf.ts'),
      `import { defineWorkflow } from 'weft';\nexport default defineWorkflow<{ cents: number }>('refund').step('refund', ({ cents }) => ({ refunded: cents }));\n`,
    );
    writeFileSync(join(dir, 'flows', 'notes.ts'), `export const notAWorkflow = 1;\n`);
    writeFileSync(
      join(dir, 'weft.config.ts'),
      `import { defineWorkflow } from 'weft';
const ping = defineWorkflow('ping').step('pong', () => 'pong');
export default { workflows: ['./flows/**/*.wf.ts', ping] };
`,
    );
  });

  afterAll(async () => {
    await dev?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'loads the paths, globs and Workflow objects the config lists',
    { timeout: 120_000 },
    async () => {
      dev = startCli(['dev', '--port', '0'], { cwd: dir });
      await dev.waitFor('stdout', /Watching the workflow files/, 60_000);
      expect(dev.stdout()).toMatch(/Workflows\s+ping v1, refund v1\s+from weft\.config\.ts/);
      const result = await runCli(
        ['trigger', 'refund', '--input', '{"cents":250}', '--wait', '--json'],
        { cwd: dir },
      );
      expect(JSON.parse(result.stdout)).toMatchObject({
        status: 'succeeded',
        output: { refunded: 250 },
      });
      expect(existsSync(join(dir, '.weft', 'db'))).toBe(true);

      // Editing the config reloads it: a workflow it no longer lists is unregistered.
      writeFileSync(
        join(dir, 'weft.config.ts'),
        `export default { workflows: './flows/**/*.wf.ts' };\n`,
      );
      await dev.waitFor('stderr', /workflow `ping` removed: no module exports it any more/);
      expect(await dev.stop()).toBe(0);
    },
  );
});
