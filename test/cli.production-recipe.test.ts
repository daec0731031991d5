/**
 * The README's production recipe, run line by line on a fresh PostgreSQL database, serves the
 * API. The lines are read out of README.md (the `sh` block after "Production on PostgreSQL"), so
 * changing the recipe without keeping it working breaks this test. The only substitutions: the
 * database URL (`postgres://…`), `npx weft` → this repository's CLI, and the port (a free one,
 * since 3700 may be taken on the test machine).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli, startCli, type CliProcess } from './support/cli-process.js';
import { createPgDatabase } from './support/databases.js';

interface RecipeLine {
  text: string;
  env: Record<string, string>;
  args: string[];
  background: boolean;
}

/** The recipe's lines, parsed; a line this test cannot run fails it (update both together). */
export function readRecipe(readme: string): RecipeLine[] {
  const at = readme.indexOf('Production on PostgreSQL');
  expect(at, 'README.md has no "Production on PostgreSQL" recipe').toBeGreaterThan(0);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(block, 'no ```sh block after "Production on PostgreSQL"').not.toBeNull();
  return block![1]!
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((text) => {
      const match = /^((?:[A-Z_]+=\S+\s+)*)npx weft\s+(.*?)\s*(&)?$/.exec(text);
      if (!match || /['"`$;|]/.test(match[2]!))
        throw new Error(
          `the README recipe line "${text}" is not one this test can run: update test/cli.production-recipe.test.ts with it`,
        );
      const env = Object.fromEntries(
        match[1]!
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
      );
      return { text, env, args: match[2]!.split(/\s+/), background: match[3] === '&' };
    });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

const WORKFLOW = `import { defineWorkflow } from 'weft';

export default defineWorkflow('hello')
  .step('greet', (input) => ({ greeting: 'hello ' + (input?.name ?? 'world') }));
`;

describe("the README's production recipe", () => {
  let db: { url: string; drop: () => Promise<void> };
  let dir: string;
  const background: CliProcess[] = [];

  beforeAll(async () => {
    db = await createPgDatabase('recipe');
    dir = mkdtempSync(join(tmpdir(), 'weft-recipe-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'recipe', type: 'module' }));
    // What `./dist/workflows` holds in a user's project: compiled workflow modules.
    mkdirSync(join(dir, 'dist', 'workflows'), { recursive: true });
    writeFileSync(join(dir, 'dist', 'workflows', 'hello.js'), WORKFLOW);
  });

  afterAll(async () => {
    await Promise.all(background.map((p) => p.stop(5_000)));
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('run line by line on a fresh database, serves the API', { timeout: 180_000 }, async () => {
    const recipe = readRecipe(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'));
    expect(recipe.map((l) => l.args[0])).toEqual(['migrate', 'keys', 'server', 'worker']);

    const port = await freePort();
    let key: string | undefined;
    let url: string | undefined;
    for (const line of recipe) {
      const env = Object.fromEntries(
        Object.entries(line.env).map(([k, v]) => [k, v === 'postgres://…' ? db.url : v]),
      );
      expect(env.DATABASE_URL, `"${line.text}" sets DATABASE_URL`).toBe(db.url);
      const args = line.args.map((a, i) => (line.args[i - 1] === '--port' ? String(port) : a));
      if (!line.background) {
        const result = await runCli(args, { cwd: dir, env, timeoutMs: 60_000 });
        expect(result.code, `"${line.text}" failed:\n${result.stderr}`).toBe(0);
        // The key is printed once, on a line of its own.
        if (args[0] === 'keys') key = /^ {2}(weft_\S+_[0-9A-Za-z]{32})$/m.exec(result.stdout)?.[1];
        continue;
      }
      const child = startCli(args, { cwd: dir, env });
      background.push(child);
      if (args[0] === 'server')
        url = (await child.waitFor('stdout', /"url":"(http:\/\/[^"]+)"/, 60_000))[1];
      else await child.waitFor('stdout', /worker started/, 60_000);
    }
    expect(key, 'the keys line printed no key').toMatch(/^weft_prod_/);
    expect(url).toBe(`http://0.0.0.0:${port}`);

    const api = `http://127.0.0.1:${port}/api/v1`;
    const auth = { authorization: `Bearer ${key}` };
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    const workflows = (await (await fetch(`${api}/workflows`, { headers: auth })).json()) as {
      data: Array<{ id: string }>;
    };
    expect(workflows.data.map((w) => w.id)).toEqual(['hello']);

    const created = await fetch(`${api}/workflows/hello/runs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { name: 'Ada' } }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    let run = { status: 'queued', finalDataclipId: null as string | null };
    const deadline = Date.now() + 30_000;
    while (run.status !== 'succeeded' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      run = (await (await fetch(`${api}/runs/${id}`, { headers: auth })).json()) as typeof run;
    }
    expect(run.status).toBe('succeeded');
    const output = (await (
      await fetch(`${api}/dataclips/${run.finalDataclipId}`, { headers: auth })
    ).json()) as { body: unknown };
    expect(output.body).toEqual({ greeting: 'hello Ada' });
  });
});
