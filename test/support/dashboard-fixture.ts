/**
 * The dashboard against a real `weft dev`: the dashboard built with Vite's JS API into a temp
 * folder (never into dist/, which `npm run build` of other work may be rewriting), `weft dev` on
 * a temporary data folder serving that build (WEFT_DASHBOARD_DIR), workflows whose slow steps
 * wait for a gate file the caller creates, and Debian's Chromium driven by playwright-core.
 * Shared by test/dashboard.browser.test.ts and scripts/screenshots.ts.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { REPO_ROOT, startCli, type CliProcess } from './cli-process.js';

export const CHROMIUM = process.env.WEFT_CHROMIUM ?? '/usr/bin/chromium';

/** Workflows the pages are exercised with; `{ gate }` in an input makes a step wait for a file. */
export const workflowSource = (gateDir: string) => `
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { defineWorkflow } from 'weft';

const GATES = ${JSON.stringify(gateDir)};
async function gate(name) {
  if (!name) return;
  while (!existsSync(GATES + '/' + name)) await new Promise((r) => setTimeout(r, 40));
}

export const pipeline = defineWorkflow('pipeline', { description: 'Fetch, transform and load a batch.' })
  .step('fetch', async (input, ctx) => {
    ctx.state.fetchedAt = 'batch-' + input.batch;
    return { batch: input.batch, items: [1, 2, 3, 4], gate: input.gate ?? null };
  })
  .step('transform', { after: 'fetch', retry: { maxAttempts: 1 } }, async (data, ctx) => {
    await gate(data.gate);
    // A bad batch fails until the "fix" is deployed (the gate file \`fixed\` exists).
    if (data.batch === 'bad' && !existsSync(GATES + '/fixed')) throw new Error('bad batch: cannot transform');
    ctx.state.transformed = data.items.length;
    return { ...data, doubled: data.items.map((x) => x * 2) };
  })
  .step('load', { after: 'transform' }, async (data, ctx) => {
    ctx.state.loaded = true;
    return { loaded: data.doubled.length, sum: data.doubled.reduce((a, b) => a + b, 0) };
  });

export const expense = defineWorkflow('expense', { description: 'A person approves each expense.' })
  .step('submit', (input) => input)
  .approval('review', {
    after: 'submit',
    schema: {
      type: 'object',
      properties: { approved: { type: 'boolean' }, note: { type: 'string' } },
      required: ['approved'],
      additionalProperties: false,
    },
  })
  .step('pay', { after: 'review' }, (decision) => ({ paid: decision.approved === true, note: decision.note ?? null }));

export const fanout = defineWorkflow('fanout', { description: 'Route, then score every item in parallel.' })
  .router('size', {}, (input) => (input.items.length > 2 ? 'many' : 'few'))
  .parallel('score', {
    after: { step: 'size', branch: 'many' },
    items: (input) => input.items,
    concurrency: 4,
    body: (b) => b.step('fetchItem', (item) => ({ item })).step('rate', { after: 'fetchItem' }, (x) => x.item.length),
  })
  .step('summarize', { after: 'score' }, (scores) => ({ total: scores.reduce((a, b) => a + b, 0) }))
  .step('single', { after: { step: 'size', branch: 'few' } }, (input) => ({ only: input.items }))
  .step('alert', { after: { step: 'summarize', on: 'failure' } }, () => ({ alerted: true }));

// 100 steps in a chain: the run view's time to first render is measured on it.
let chain = defineWorkflow('chain100', { description: '100 steps in a row.' }).step('s1', (x) => x);
for (let i = 2; i <= 100; i++) chain = chain.step('s' + i, { after: 's' + (i - 1) }, (x) => x);
export const chain100 = chain;

// 1,000 steps: a root, 20 lanes of 49 steps, a join and a tail of 18 (the graph page must stay
// responsive).
let big = defineWorkflow('big1000', { description: '1,000 steps: 20 lanes of 49 between a root and a join, then 18 more.' }).step('root', (x) => x);
const tails = [];
for (let lane = 0; lane < 20; lane++) {
  let prev = 'root';
  for (let i = 0; i < 49; i++) {
    const id = 'l' + lane + '_' + i;
    big = big.step(id, { after: prev }, (x) => x);
    prev = id;
  }
  tails.push(prev);
}
big = big.step('join', { after: tails }, (x) => x);
for (let i = 1; i <= 18; i++) big = big.step('tail' + i, { after: i === 1 ? 'join' : 'tail' + (i - 1) }, (x) => x);
export const big1000 = big;

export const signup = defineWorkflow('signup', {
  description: 'A checked input.',
  input: z.object({ email: z.string().includes('@'), name: z.string().min(1), plan: z.enum(['free', 'pro']).optional() }),
}).step('greet', (u) => 'hello ' + u.name);
`;

export interface DashboardFixture {
  dir: string;
  /** The workflow module `weft dev` watches (edit it to register a new version). */
  workflowsFile: string;
  url: string;
  apiKey: string;
  signInLink: string;
  dev: CliProcess;
  browser: Browser;
  context: BrowserContext;
  /** Create the gate file `name`: steps waiting for it continue. */
  openGate(name: string): void;
  api<T = unknown>(
    path: string,
    init?: { method?: string; body?: unknown },
  ): Promise<{ status: number; body: T }>;
  waitForRun(
    runId: string,
    statuses?: string[],
    timeoutMs?: number,
  ): Promise<{ id: string; status: string }>;
  close(): Promise<void>;
}

/** Build the dashboard into `outDir` with Vite's JS API (a few seconds). */
export async function buildDashboard(outDir: string): Promise<void> {
  const { build } = await import('vite');
  await build({
    configFile: join(REPO_ROOT, 'dashboard', 'vite.config.ts'),
    logLevel: 'error',
    build: { outDir, emptyOutDir: true },
  });
}

export async function openDashboardFixture(
  options: { viewport?: { width: number; height: number } } = {},
): Promise<DashboardFixture> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is not at ${CHROMIUM}: apt-get install -y chromium (or set WEFT_CHROMIUM).`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'weft-dashboard-'));
  const build = join(dir, 'dashboard-build');
  const gates = join(dir, 'gates');
  mkdirSync(gates);
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'dashboard-test', type: 'module' }),
  );
  writeFileSync(join(dir, 'workflows.ts'), workflowSource(gates));
  // the workflows import zod as an application would: from its own node_modules
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(join(REPO_ROOT, 'node_modules', 'zod'), join(dir, 'node_modules', 'zod'));
  let dev: CliProcess | undefined;
  let browser: Browser | undefined;
  try {
    await buildDashboard(build);
    dev = startCli(
      [
        'dev',
        '--port',
        '0',
        '--data-dir',
        join(dir, 'state'),
        '--workflows',
        join(dir, 'workflows.ts'),
      ],
      {
        cwd: dir,
        env: { WEFT_DASHBOARD_DIR: build },
      },
    );
    const match = await dev.waitFor('stdout', /Dashboard\s+(http:\/\/\S+#key=(\S+))/, 90_000);
    await dev.waitFor('stdout', /Ctrl-C stops/, 30_000);
    const signInLink = match[1]!;
    const apiKey = decodeURIComponent(match[2]!);
    const url = new URL(signInLink).origin;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-gpu',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({
      viewport: options.viewport ?? { width: 1280, height: 860 },
    });
    const api = async <T>(path: string, init: { method?: string; body?: unknown } = {}) => {
      const res = await fetch(url + path, {
        method: init.method ?? 'GET',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
    };
    const fixture: DashboardFixture = {
      dir,
      workflowsFile: join(dir, 'workflows.ts'),
      url,
      apiKey,
      signInLink,
      dev,
      browser,
      context,
      openGate: (name) => writeFileSync(join(gates, name), ''),
      api,
      async waitForRun(runId, statuses = ['succeeded', 'failed', 'canceled'], timeoutMs = 30_000) {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const { body } = await api<{ id: string; status: string }>(`/api/v1/runs/${runId}`);
          if (statuses.includes(body.status)) return body;
          if (Date.now() > until)
            throw new Error(`run ${runId} is still ${body.status} after ${timeoutMs} ms`);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      async close() {
        await browser?.close().catch(() => {});
        await dev?.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return fixture;
  } catch (error) {
    await browser?.close().catch(() => {});
    await dev?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Load `path` in a fresh page and wait until `ready` (a CSS selector) matches `count` elements:
 * the time from navigation start to that moment, as the page's own clock measures it.
 */
export async function timeToRender(
  /** A context: a new page (cold caches); a page: reloaded (the same tab's session caches). */
  context: BrowserContext | Page,
  url: string,
  ready: string,
  count = 1,
): Promise<{ ms: number; page: Page }> {
  const page = 'newPage' in context ? await context.newPage() : context;
  if (page === context) await page.reload({ waitUntil: 'commit' });
  else await page.goto(url, { waitUntil: 'commit' });
  // A function, not a string: the page's CSP refuses eval. It runs in the page, so the DOM is
  // reached through globalThis (this file is type-checked without DOM types).
  const ms = await page.waitForFunction(
    ({ selector, n }) => {
      const doc = (
        globalThis as unknown as {
          document: { querySelectorAll(s: string): { length: number } };
        }
      ).document;
      return doc.querySelectorAll(selector).length >= n ? performance.now() : false;
    },
    { selector: ready, n: count },
    { timeout: 60_000, polling: 'raf' },
  );
  return { ms: Math.round((await ms.jsonValue()) as number), page };
}
