/**
 * `weft trigger <workflow> --batch <file>` as a user runs it (a child process through tsx) against
 * an in-process server on a real socket: JSON Lines and a JSON array, more inputs than one request
 * holds, each refused input named by its line, and the mistakes refused before anything starts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineWorkflow } from '../src/index.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import { runCli } from './support/cli-process.js';
import { allRunIds, openServerFixture, type ServerFixture } from './support/server-fixture.js';

const greet = defineWorkflow('greet', { input: z.object({ name: z.string() }) }).step(
  'hello',
  (input) => `hello ${input.name}`,
);

describe('weft trigger --batch', () => {
  let f: ServerFixture;
  let server: RunningServer;
  let dir: string;
  let env: Record<string, string>;
  let before: string[];

  beforeAll(async () => {
    f = await openServerFixture('pglite', [greet]);
    server = await startServer(f.app, { port: 0 });
    dir = mkdtempSync(join(tmpdir(), 'weft-batch-'));
    env = { WEFT_URL: server.url, WEFT_API_KEY: f.auth.authorization!.slice('Bearer '.length) };
  });
  afterAll(async () => {
    await server?.close();
    await f?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    before = await allRunIds(f.db, f.environmentId);
  });

  const cli = (...args: string[]) => runCli(args, { cwd: dir, env, timeoutMs: 60_000 });
  const newRuns = async () =>
    (await allRunIds(f.db, f.environmentId)).filter((id) => !before.includes(id));

  it('starts one run per line, across several requests, and names each refused line (exit 1)', async () => {
    const lines = Array.from({ length: 520 }, (_, i) => JSON.stringify({ name: `n${i}` }));
    lines.splice(3, 0, '', '{"name": 7}'); // a blank line (skipped), then line 5: refused
    writeFileSync(join(dir, 'inputs.jsonl'), `${lines.join('\n')}\n`);
    const res = await cli('trigger', 'greet', '--batch', 'inputs.jsonl');
    expect(res.code).toBe(1);
    expect(res.stdout).toContain('Started 520 runs of greet; 1 input refused.');
    expect(res.stdout).toMatch(/line 5: .*input\.name/);
    expect(await newRuns()).toHaveLength(520);
  });

  it('reads one JSON array too, and prints every result with --json (exit 0)', async () => {
    writeFileSync(join(dir, 'inputs.json'), JSON.stringify([{ name: 'a' }, { name: 'b' }]));
    const res = await cli('trigger', 'greet', '--batch', 'inputs.json', '--json');
    expect(res.code).toBe(0);
    const results = JSON.parse(res.stdout);
    expect(results.map((r: { status: number }) => r.status)).toEqual([201, 201]);
    expect((await newRuns()).sort()).toEqual(
      results.map((r: { run: { id: string } }) => r.run.id).sort(),
    );
  });

  it('refuses a bad file or a conflicting option before starting anything', async () => {
    writeFileSync(join(dir, 'broken.jsonl'), '{"name": "a"}\n{"name": \n');
    const broken = await cli('trigger', 'greet', '--batch', 'broken.jsonl');
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toMatch(/line 2 is not valid JSON/);
    const both = await cli('trigger', 'greet', '--batch', 'broken.jsonl', '--input', '{}');
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/drop --input/);
    const missing = await cli('trigger', 'greet', '--batch', 'nope.jsonl');
    expect(missing.stderr).toMatch(/cannot read it \(ENOENT\)/);
    const unknown = await cli('trigger', 'nope', '--batch', 'inputs.json');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/nope/);
    expect(await newRuns()).toEqual([]);
  });
});
