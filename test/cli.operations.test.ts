/**
 * Operations while servers run, as real processes. With `weft dev` running, `weft keys
 * create|list|revoke`, `weft environments …` and `weft projects …` go through its API (the
 * PGlite folder is locked by it), and a revoked key is refused by the running server on its next
 * request. With no server they fall back to the database; with neither, the error names both.
 * `weft dev --environment staging` serves another environment of the same project; on
 * PostgreSQL, `weft worker --environment staging` registers its workflows into a `staging` beside
 * `prod`, managed through `weft server` with the same admin key.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase } from './support/databases.js';
import { runCli, startCli, type CliProcess } from './support/cli-process.js';

const WORKFLOW = `import { defineWorkflow } from 'weft';
export const ping = defineWorkflow<{ n: number }>('ping').step('pong', ({ n }) => n + 1);
`;

async function status(url: string, key: string, path = '/api/v1/runs'): Promise<number> {
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${key}` } });
  await res.text();
  return res.status;
}

function project(dir: string): void {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'ops-test', type: 'module' }));
  writeFileSync(join(dir, 'ping.ts'), WORKFLOW);
}

describe('operations with weft dev running', () => {
  let dir: string;
  let dataDir: string;
  let dev: CliProcess | undefined;
  let url: string;
  const cli = (args: string[], env: Record<string, string> = {}) =>
    runCli([...args, '--data-dir', dataDir], { cwd: dir, env, timeoutMs: 60_000 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-ops-'));
    dataDir = join(dir, 'state');
    project(dir);
    dev = startCli(
      ['dev', '--port', '0', '--data-dir', dataDir, '--workflows', './ping.ts', '--no-watch'],
      { cwd: dir },
    );
    await dev.waitFor('stdout', /API key\s+weft_/, 60_000);
    // The URL from the file the CLI reads (the banner's wording is for people).
    url = (JSON.parse(readFileSync(join(dataDir, 'dev.json'), 'utf8')) as { url: string }).url;
  }, 90_000);

  afterAll(async () => {
    await dev?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keys create / list / revoke go through the running server; the revoked key is refused on its next request', async () => {
    const created = await cli(['keys', 'create', '--scope', 'read', '--label', 'leaky', '--json']);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as { id: string; key: string; via: string };
    expect(key.via).toBe('api');
    expect(key.key).toMatch(/^weft_dev_[0-9A-Za-z]{32}$/);
    expect(await status(url, key.key)).toBe(200);
    // read scope: no trigger
    const trigger = await fetch(`${url}/api/v1/workflows/ping/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      body: '{"input":{"n":1}}',
    });
    expect(trigger.status).toBe(403);

    const listed = await cli(['keys', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(key.id);
    expect(listed.stdout).toContain('leaky');
    expect(listed.stdout).toContain('read');
    expect(listed.stdout).not.toContain(key.key);

    const revoked = await cli(['keys', 'revoke', key.id]);
    expect(revoked.stderr).toBe('');
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`Revoked API key ${key.id} through the Weft API`);
    expect(await status(url, key.key)).toBe(401);
    // The server stayed up throughout.
    expect(dev!.child.exitCode).toBeNull();
  }, 90_000);

  it('environments and projects through the running server', async () => {
    const made = await cli(['environments', 'create', 'staging']);
    expect(made.stderr).toBe('');
    expect(made.stdout).toContain('Created environment staging');
    const paused = await cli(['environments', 'pause', 'staging']);
    expect(paused.code).toBe(0);
    expect(paused.stdout).toContain('Paused environment staging');
    const listed = await cli(['environments', 'list', '--json']);
    const envs = (JSON.parse(listed.stdout) as { data: Array<{ name: string; paused: boolean }> })
      .data;
    expect(envs.map((e) => [e.name, e.paused])).toEqual([
      ['dev', false],
      ['staging', true],
    ]);
    expect((await cli(['environments', 'resume', 'staging'])).code).toBe(0);

    const settings = await cli(['projects', 'settings', '--retention-days', '14', '--json']);
    expect(settings.stderr).toBe('');
    expect(JSON.parse(settings.stdout)).toMatchObject({
      name: 'default',
      retentionDays: 14,
      saveDataclips: true,
    });
    const projects = await cli(['projects', 'list']);
    expect(projects.stdout).toContain('14 days');
    // Over the API the project is the key's: another --project is refused, not ignored.
    const other = await cli(['keys', 'list', '--project', 'billing']);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('belongs to project "default"');
  }, 90_000);

  it('with the server stopped, the same commands work on the dev folder', async () => {
    await dev!.stop();
    dev = undefined;
    const listed = await cli(['keys', 'list', '--json']);
    expect(listed.stderr).toBe('');
    const keys = JSON.parse(listed.stdout) as { data: Array<{ label: string | null }> };
    expect(keys.data.map((k) => k.label)).toContain('leaky');
    const created = await cli(['keys', 'create', '--scope', 'admin', '--json']);
    expect(JSON.parse(created.stdout)).toMatchObject({ via: 'database', scopes: ['admin'] });
  }, 90_000);

  it('with neither a server nor a database, the error names both ways', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'weft-ops-empty-'));
    try {
      const result = await runCli(['keys', 'list'], { cwd: empty, timeoutMs: 30_000 });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('WEFT_URL');
      expect(result.stderr).toContain('DATABASE_URL');
      expect(result.stderr).toContain('weft dev');
      const unreachable = await runCli(['keys', 'list'], {
        cwd: empty,
        env: { WEFT_URL: 'http://127.0.0.1:9' },
        timeoutMs: 30_000,
      });
      expect(unreachable.code).toBe(1);
      expect(unreachable.stderr).toContain('no Weft server answers at http://127.0.0.1:9');
      expect(unreachable.stderr).toContain('DATABASE_URL');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  }, 60_000);

  it('weft dev --environment staging runs the workflows in staging', async () => {
    dev = startCli(
      [
        'dev',
        '--port',
        '0',
        '--data-dir',
        dataDir,
        '--workflows',
        './ping.ts',
        '--no-watch',
        '--environment',
        'staging',
      ],
      { cwd: dir },
    );
    const [, found] = await dev.waitFor('stdout', /API key\s+(weft_\S+)/, 60_000);
    expect(found).toMatch(/^weft_staging_/);
    const run = await cli(['trigger', 'ping', '--input', '{"n":41}', '--wait', '--json']);
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toMatchObject({ status: 'succeeded', output: 42 });
    const envs = await cli(['environments', 'list', '--json']);
    expect(
      (JSON.parse(envs.stdout) as { data: Array<{ name: string; current: boolean }> }).data,
    ).toEqual([
      expect.objectContaining({ name: 'dev', current: false }),
      expect.objectContaining({ name: 'staging', current: true }),
    ]);
  }, 90_000);
});

describe('operations on PostgreSQL with weft server running', () => {
  let db: Awaited<ReturnType<typeof createPgDatabase>>;
  let dir: string;
  const processes: CliProcess[] = [];
  const env = (extra: Record<string, string> = {}) => ({ DATABASE_URL: db.url, ...extra });

  beforeAll(async () => {
    db = await createPgDatabase('ops');
    dir = mkdtempSync(join(tmpdir(), 'weft-ops-pg-'));
    project(dir);
  });
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.stop(5_000)));
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('bootstrap on the database, then keys over the API; a worker serves staging beside prod', async () => {
    expect((await runCli(['migrate'], { cwd: dir, env: env(), timeoutMs: 60_000 })).code).toBe(0);
    const boot = await runCli(
      ['keys', 'create', '--scope', 'admin', '--environment', 'prod', '--json'],
      { cwd: dir, env: env(), timeoutMs: 60_000 },
    );
    expect(boot.stderr).toBe('');
    const admin = JSON.parse(boot.stdout) as { key: string; via: string };
    expect(admin.via).toBe('database');

    const server = startCli(['server', '--port', '0'], { cwd: dir, env: env() });
    processes.push(server);
    const [, url] = await server.waitFor(
      'stdout',
      /"url":"(http:\/\/[^"]+)"[^\n]*server listening/,
      60_000,
    );
    const api = env({ WEFT_URL: url!, WEFT_API_KEY: admin.key });

    const worker = startCli(['worker', '--workflows', './ping.ts', '--environment', 'staging'], {
      cwd: dir,
      env: env(),
    });
    processes.push(worker);
    await worker.waitFor('stdout', /worker started/, 60_000);

    // staging joined prod's project: the prod admin key manages it and makes keys for it.
    const envs = await runCli(['environments', 'list', '--json'], { cwd: dir, env: api });
    expect(envs.stderr).toBe('');
    expect(
      (JSON.parse(envs.stdout) as { data: Array<{ name: string }> }).data.map((e) => e.name),
    ).toEqual(['prod', 'staging']);
    const made = await runCli(
      ['keys', 'create', '--environment', 'staging', '--scope', 'trigger', '--json'],
      { cwd: dir, env: api },
    );
    const staging = JSON.parse(made.stdout) as { id: string; key: string; via: string };
    expect(staging.via).toBe('api');
    const run = await runCli(['trigger', 'ping', '--input', '{"n":1}', '--wait', '--json'], {
      cwd: dir,
      env: env({ WEFT_URL: url!, WEFT_API_KEY: staging.key }),
      timeoutMs: 60_000,
    });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toMatchObject({ status: 'succeeded', output: 2 });

    const revoked = await runCli(['keys', 'revoke', staging.id], { cwd: dir, env: api });
    expect(revoked.code).toBe(0);
    expect(await status(url!, staging.key)).toBe(401);
  }, 180_000);
});
