/**
 * Weft as a user gets it: `npm pack` (which builds through the `prepare` script), a fresh
 * project that `npm install`s the tarball, a TypeScript workflow importing from 'weft' that
 * type-checks against the shipped declarations, and `weft dev` from that project's
 * node_modules/.bin running it over HTTP. Then the embeddable API: `createApp` imported from
 * 'weft', served on its own and mounted in a Hono app, answering /healthz and a v1 route with a
 * key; and a lean install (`--omit=optional`) that imports 'weft' without the optional drivers and
 * names the package to install when one is needed.
 *
 * The package is packed from a copy of the repository's sources (node_modules linked), so the
 * build does not replace the working tree's dist/ under someone else's feet.
 */
import { execFile, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, watchProcess, type CliProcess } from './support/cli-process.js';

const exec = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const PACK_INPUTS = [
  'package.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'README.md',
  'CHANGELOG.md',
  'LICENSE',
  'src',
  'bin',
  'examples',
  'scripts',
  'dashboard',
];

/** Run a command with a time limit; on failure the error carries its output. */
async function sh(
  command: string,
  args: string[],
  cwd: string,
  timeoutMs = 180_000,
): Promise<string> {
  try {
    const { stdout } = await exec(command, args, {
      cwd,
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${command} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`,
    );
  }
}

const WORKFLOW = `import { defineWorkflow, TerminalError } from 'weft';

export const invoice = defineWorkflow<{ customer: string; amounts: number[] }>('invoice')
  .step('total', ({ amounts }) => amounts.reduce((sum, n) => sum + n, 0))
  .step('check', { after: 'total' }, (total) => {
    if (total < 0) throw new TerminalError('a negative total cannot be invoiced');
    return { total, currency: 'EUR' as const };
  })
  .step('render', { after: 'check' }, ({ total, currency }, ctx) => ({
    line: \`\${total.toFixed(2)} \${currency}\`,
    key: ctx.idempotencyKey.length > 0,
  }))
  .step('reject', { after: { step: 'check', on: 'failure' } }, ({ error }) => ({ rejected: error.message }));

// The shipped declarations are real types, not \`any\`: this line must be an error.
// @ts-expect-error total is a number
invoice.steps.length.toUpperCase;
export const typed = defineWorkflow<{ n: number }>('typed').step('a', ({ n }) => n.toFixed(1));
`;

// Type-level use of the exported API types: they are real declarations.
const API_TYPES = `import { createApp, type CreateAppOptions, type RunningServer, type StartServerOptions } from 'weft';

export const options: Omit<CreateAppOptions, 'stores'> = { corsOrigins: ['https://a.example'], trustProxy: true };
export const listen: StartServerOptions = { port: 0, drainTimeoutMs: 5_000 };
export const close = (server: RunningServer): Promise<void> => server.close();
export const make: typeof createApp = createApp;
// @ts-expect-error stores are required
createApp({});
`;

// What docs/embedding.md shows, in the user's project: the API on its own port, and mounted under
// /weft in the user's Hono app (hono comes with weft). PGlite in memory, a worker in-process.
const EMBED = `import { Hono } from 'hono';
import { createApp, createStores, defineWorkflow, Engine, ensureEnvironment, openExecutor, startServer } from 'weft';

const stores = createStores({ control: await openExecutor('pglite:memory') });
await stores.migrate();
const environmentId = await ensureEnvironment(stores.control, { environment: 'prod' });
const engine = await Engine.start({
  stores,
  environmentId,
  workflows: [defineWorkflow('embedded').step('a', () => 1)],
});
const key = await stores.control.createApiKey(environmentId, 'embed');

const own = await startServer(createApp({ stores }), { port: 0 });
const user = new Hono();
user.get('/', (c) => c.text('my app'));
user.mount('/weft', createApp({ stores, dashboard: false }).fetch);
const mounted = await startServer(user, { port: 0 });
console.log(JSON.stringify({ own: own.url, mounted: mounted.url + '/weft', key: key.token }));
process.once('SIGTERM', async () => {
  await own.close();
  await mounted.close();
  await engine.stop();
  await stores.close();
  console.log('closed');
  process.exit(0);
});
`;

const LEAN = `import { createApp, openExecutor } from 'weft';
console.log('createApp', typeof createApp);
for (const url of ['pglite:memory', 'postgres://127.0.0.1:1/none']) {
  try {
    await openExecutor(url);
    console.log(url, 'opened?!');
  } catch (error) {
    console.log(error.message);
  }
}
`;

describe('the npm package', () => {
  let root: string;
  let app: string;
  let dev: CliProcess | undefined;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'weft-pkg-'));
    app = join(root, 'app');
  });

  afterAll(async () => {
    await dev?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it(
    'packs, installs into a fresh project, type-checks a workflow and runs it with `weft dev`',
    { timeout: 420_000 },
    async () => {
      // 1. npm pack from a copy of the sources: `prepare` builds dist/ there.
      const source = join(root, 'source');
      mkdirSync(source);
      for (const entry of PACK_INPUTS) {
        if (existsSync(join(REPO_ROOT, entry)))
          cpSync(join(REPO_ROOT, entry), join(source, entry), { recursive: true });
      }
      symlinkSync(join(REPO_ROOT, 'node_modules'), join(source, 'node_modules'), 'dir');
      const packed = JSON.parse(
        await sh(NPM, ['pack', '--json', '--pack-destination', root], source),
      ) as Array<{ filename: string; files: Array<{ path: string }> }>;
      const files = packed[0]!.files.map((f) => f.path);
      expect(files).toEqual(
        expect.arrayContaining([
          'bin/weft.js',
          'dist/index.js',
          'dist/index.d.ts',
          'dist/cli/main.js',
          'examples/index.ts',
        ]),
      );
      expect(files.some((f) => f.startsWith('dist/store/migrations/') && f.endsWith('.sql'))).toBe(
        true,
      );
      expect(files.some((f) => f.startsWith('src/') || f.startsWith('test/'))).toBe(false);

      // 2. A fresh ESM project installs the tarball (dependencies from the npm cache when possible).
      mkdirSync(app);
      writeFileSync(
        join(app, 'package.json'),
        JSON.stringify({ name: 'weft-user-app', private: true, type: 'module' }, null, 2),
      );
      await sh(
        NPM,
        [
          'install',
          join(root, packed[0]!.filename),
          '--no-audit',
          '--no-fund',
          '--prefer-offline',
          '--loglevel=error',
        ],
        app,
        300_000,
      );
      expect(existsSync(join(app, 'node_modules', '.bin', 'weft'))).toBe(true);

      // 3. The user's workflow type-checks against the shipped declarations.
      writeFileSync(join(app, 'wf.ts'), WORKFLOW);
      writeFileSync(join(app, 'api.ts'), API_TYPES);
      writeFileSync(
        join(app, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noEmit: true,
            skipLibCheck: true,
            types: [],
          },
          files: ['wf.ts', 'api.ts'],
        }),
      );
      await sh(
        process.execPath,
        [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
        app,
      );

      // 4. `weft dev` from the project's node_modules/.bin (what `npx weft` runs) serves that workflow.
      const child = spawn(
        join(app, 'node_modules', '.bin', 'weft'),
        ['dev', '--workflows', './wf.ts', '--port', '0'],
        {
          cwd: app,
          env: Object.fromEntries(
            Object.entries(process.env).filter(([k]) => !k.startsWith('WEFT_')),
          ),
          stdio: 'pipe',
        },
      );
      dev = watchProcess(child, 'weft dev (installed package)');
      await dev.waitFor('stdout', /Watching the workflow files/, 90_000);
      expect(dev.stdout()).toContain('invoice v1');
      const { url, apiKey } = JSON.parse(readFileSync(join(app, '.weft', 'dev.json'), 'utf8')) as {
        url: string;
        apiKey: string;
      };
      const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };

      // The dashboard is in the package, built: `/` (and any page path) is its index, and the
      // script it names is served from the installed dist/dashboard.
      const page = await fetch(`${url}/runs`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      const html = await page.text();
      const script = /<script[^>]+src="([^"]+\.js)"/.exec(html)?.[1];
      expect(script, 'the dashboard index names its script').toBeDefined();
      const asset = await fetch(new URL(script!, url));
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toMatch(/javascript/);
      expect((await asset.text()).length).toBeGreaterThan(10_000);

      const created = await fetch(`${url}/api/v1/workflows/invoice/runs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ input: { customer: 'ACME', amounts: [12.5, 30] } }),
      });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      let run: { status: string; finalDataclipId: string | null } = {
        status: 'queued',
        finalDataclipId: null,
      };
      const deadline = Date.now() + 30_000;
      while (!['succeeded', 'failed', 'canceled'].includes(run.status) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        run = (await (await fetch(`${url}/api/v1/runs/${id}`, { headers })).json()) as typeof run;
      }
      expect(run.status).toBe('succeeded');
      const output = (await (
        await fetch(`${url}/api/v1/dataclips/${run.finalDataclipId}`, { headers })
      ).json()) as { body: unknown };
      expect(output.body).toEqual({ line: '42.50 EUR', key: true });

      // The installed CLI's client commands find the server through .weft/dev.json. A TerminalError
      // thrown by the user's module is the engine's own class: not retried, failure edge taken.
      const weft = (...args: string[]) =>
        sh(join(app, 'node_modules', '.bin', 'weft'), args, app, 60_000);
      expect(await weft('runs', 'show', id)).toMatch(/render\s+succeeded/);
      const negative = JSON.parse(
        await weft(
          'trigger',
          'invoice',
          '--input',
          '{"customer":"X","amounts":[-1]}',
          '--wait',
          '--json',
        ),
      ) as { id: string; output: unknown };
      expect(negative.output).toEqual({ rejected: 'a negative total cannot be invoiced' });
      expect(await weft('runs', 'show', negative.id)).toMatch(
        /check\s+failed\s+1\/3\s+\S+\s+TerminalError/,
      );
      expect(await dev.stop()).toBe(0);

      // 5. With no workflows of its own, `weft dev` runs the examples shipped in the package.
      const examples = spawn(
        join(app, 'node_modules', '.bin', 'weft'),
        ['dev', '--port', '0', '--data-dir', '.weft-examples'],
        {
          cwd: app,
          env: Object.fromEntries(
            Object.entries(process.env).filter(([k]) => !k.startsWith('WEFT_')),
          ),
          stdio: 'pipe',
        },
      );
      dev = watchProcess(examples, 'weft dev (bundled examples)');
      await dev.waitFor('stdout', /Watching the workflow files/, 90_000);
      expect(dev.stdout()).toMatch(
        /card-payment v1, contact-import v1, document-review v1, newsletter v1, nightly-import v1, order-fulfilment v1, welcome-email v1/,
      );
      const declined = JSON.parse(
        await weft(
          'trigger',
          'card-payment',
          '--data-dir',
          '.weft-examples',
          '--wait',
          '--json',
          '--input',
          '{"customerId":"c","amountCents":100,"card":"4000000000000002"}',
        ),
      ) as { id: string; output: { status: string } };
      expect(declined.output.status).toBe('declined');
      expect(await weft('runs', 'show', declined.id, '--data-dir', '.weft-examples')).toMatch(
        /charge\s+failed\s+1\/4/,
      );
      expect(await dev.stop()).toBe(0);

      // 6. The embeddable API from the installed package: createApp on its own port, and mounted
      // in the user's Hono app, each answering /healthz and a v1 route with a key.
      writeFileSync(join(app, 'embed.mjs'), EMBED);
      const embed = spawn(process.execPath, ['embed.mjs'], {
        cwd: app,
        env: Object.fromEntries(
          Object.entries(process.env).filter(([k]) => !k.startsWith('WEFT_')),
        ),
        stdio: 'pipe',
      });
      dev = watchProcess(embed, 'embed.mjs (installed package)');
      const ready = JSON.parse((await dev.waitFor('stdout', /^(\{.*\})$/m, 90_000))[1]!) as {
        own: string;
        mounted: string;
        key: string;
      };
      for (const base of [ready.own, ready.mounted]) {
        expect((await fetch(`${base}/healthz`)).status).toBe(200);
        const listed = await fetch(`${base}/api/v1/workflows`, {
          headers: { authorization: `Bearer ${ready.key}` },
        });
        expect(listed.status).toBe(200);
        expect(
          ((await listed.json()) as { data: Array<{ id: string }> }).data.map((w) => w.id),
        ).toEqual(['embedded']);
        expect((await fetch(`${base}/api/v1/workflows`)).status).toBe(401);
      }
      // The user's own route next to the mounted API.
      expect(await (await fetch(ready.mounted.replace(/\/weft$/, '/'))).text()).toBe('my app');
      expect(await dev.stop()).toBe(0);
      expect(dev.stdout()).toContain('closed');

      // 7. A lean install leaves the optional drivers and tsx out; 'weft' still imports, and a
      // URL that needs a missing driver names the package to install.
      const lean = join(root, 'lean');
      mkdirSync(lean);
      writeFileSync(
        join(lean, 'package.json'),
        JSON.stringify({ name: 'weft-lean-app', private: true, type: 'module' }, null, 2),
      );
      await sh(
        NPM,
        [
          'install',
          join(root, packed[0]!.filename),
          '--omit=optional',
          '--no-audit',
          '--no-fund',
          '--prefer-offline',
          '--loglevel=error',
        ],
        lean,
        300_000,
      );
      for (const pkg of ['pg', '@electric-sql/pglite', 'tsx', 'esbuild'])
        expect(existsSync(join(lean, 'node_modules', pkg)), pkg).toBe(false);
      writeFileSync(join(lean, 'lean.mjs'), LEAN);
      const leanOut = await sh(process.execPath, ['lean.mjs'], lean, 60_000);
      expect(leanOut).toContain('createApp function');
      expect(leanOut).toContain(
        'needs the @electric-sql/pglite package, which is not installed (it is an optional dependency of weft, left out of this install). Install it next to weft: npm install @electric-sql/pglite',
      );
      expect(leanOut).toContain('needs the pg package, which is not installed');
    },
  );
});
