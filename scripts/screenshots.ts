/**
 * Screenshots of the dashboard's main pages for the README, taken from a real `weft dev` in
 * Chromium (the browser test's fixture), so they can be refreshed after a UI change:
 *
 *   node --import tsx scripts/screenshots.ts        # writes docs/images/dashboard-*.png
 *
 * Also measures the time to first render of a 100-step run (printed; recorded in
 * dashboard/README.md): a fresh page load of the run view until all 100 nodes are drawn.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import {
  openDashboardFixture,
  timeToRender,
  type DashboardFixture,
} from '../test/support/dashboard-fixture.js';

const OUT = fileURLToPath(new URL('../docs/images/', import.meta.url));

async function settle(page: Page): Promise<void> {
  await page.waitForLoadState('networkidle').catch(() => {});
  await page.waitForTimeout(400);
}

async function trigger(f: DashboardFixture, workflowId: string, input: unknown): Promise<string> {
  const { status, body } = await f.api<{ id: string }>(`/api/v1/workflows/${workflowId}/runs`, {
    method: 'POST',
    body: { input },
  });
  if (status !== 201) throw new Error(`trigger ${workflowId}: ${status} ${JSON.stringify(body)}`);
  return body.id;
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const f = await openDashboardFixture({ viewport: { width: 1280, height: 800 } });
  try {
    const page = await f.context.newPage();
    await page.goto(f.signInLink);
    await page.getByRole('heading', { name: 'Workflows' }).waitFor();

    // Some history to show: finished runs, a fan-out, a run waiting for approval.
    const done = await trigger(f, 'pipeline', { batch: 7 });
    await f.waitForRun(done);
    const fan = await trigger(f, 'fanout', { items: ['alpha', 'beta', 'gamma', 'delta'] });
    await f.waitForRun(fan);
    await trigger(f, 'expense', { amount: 120, by: 'ada' });

    // 1. A workflow's graph: router branches, a parallel drawn as a group, a failure edge.
    await page.goto(`${f.url}/workflows/fanout`);
    await page.getByTestId('graph').waitFor();
    await settle(page);
    await page.screenshot({ path: `${OUT}dashboard-workflow-graph.png` });

    // 2. A run live: `transform` holds on its gate while the page follows the stream.
    const live = await trigger(f, 'pipeline', { batch: 8, gate: 'shot-live' });
    await page.goto(`${f.url}/runs/${live}`);
    await page.locator('[data-testid="node-transform"][data-status="running"]').waitFor();
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    await page.waitForTimeout(300);
    await page.screenshot({ path: `${OUT}dashboard-run-live.png` });
    f.openGate('shot-live');
    await page.locator('[data-testid="node-load"][data-status="succeeded"]').waitFor();

    // 3. The step panel: the selected step's output.
    await page.locator('[data-testid="node-transform"]').click();
    await page.getByTestId('dataclip-output').waitFor();
    await settle(page);
    await page.screenshot({ path: `${OUT}dashboard-step-panel.png` });

    // 4. Timeline with time travel: the run state right after `transform` committed.
    await page.locator('.gantt-row', { hasText: 'transform' }).click();
    await page.getByTestId('time-travel').waitFor();
    await page.getByTestId('timeline').scrollIntoViewIfNeeded();
    await settle(page);
    const timeline = page.locator('.section', { has: page.getByTestId('timeline') });
    await timeline.screenshot({ path: `${OUT}dashboard-timeline.png` });

    // 5. Run from here: the plan drawn on the graph before anything runs.
    await page.evaluate('window.scrollTo(0, 0)');
    await page.locator('[data-testid="node-transform"]').click();
    await page.getByTestId('step-panel').getByRole('button', { name: 'Run from here' }).click();
    await page.getByTestId('plan-list').waitFor();
    await settle(page);
    await page.screenshot({ path: `${OUT}dashboard-run-from-here.png` });

    // A fan-out run: the parallel group with its branch counts.
    await page.goto(`${f.url}/runs/${fan}`);
    await page.locator('[data-testid="node-rate"][data-status="succeeded"]').waitFor();
    await page.locator('[data-testid="node-rate"]').click();
    await page.getByTestId('step-panel').waitFor();
    await settle(page);
    await page.screenshot({ path: `${OUT}dashboard-run-parallel.png` });
    console.log('screenshots written to docs/images/');

    // Time to first render of a 100-step run: a fresh page load until all 100 nodes are drawn
    // with their status (median of 5; the layout worker starts cold each time).
    const chain = await trigger(f, 'chain100', { n: 1 });
    await f.waitForRun(chain, ['succeeded'], 60_000);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { ms, page: p } = await timeToRender(
        f.context,
        `${f.url}/runs/${chain}`,
        '.flow-node[data-status="succeeded"]',
        100,
      );
      times.push(ms);
      await p.close();
    }
    times.sort((a, b) => a - b);
    console.log(`100-step run, time to first render: median ${times[2]} ms (${times.join(', ')})`);
    // Reloading the same tab: the layout comes from the session cache.
    const warm: number[] = [];
    const tab = (await timeToRender(f.context, `${f.url}/runs/${chain}`, '.flow-node', 100)).page;
    for (let i = 0; i < 5; i++) {
      warm.push((await timeToRender(tab, '', '.flow-node[data-status="succeeded"]', 100)).ms);
    }
    warm.sort((a, b) => a - b);
    console.log(`  reloaded (layout cached): median ${warm[2]} ms (${warm.join(', ')})`);

    // A 1,000-node graph: time until it is drawn, DOM nodes at the fitted zoom, and the frame
    // time of zooming in and panning.
    const big = await timeToRender(f.context, `${f.url}/workflows/big1000`, '.react-flow__node', 1);
    await big.page.locator('.react-flow__node').first().waitFor();
    const drawn = await big.page.locator('.react-flow__node').count();
    const frames = (await big.page.evaluate(`(async () => {
      const pane = document.querySelector('.react-flow__pane');
      const r = pane.getBoundingClientRect();
      const times = [];
      for (let i = 0; i < 30; i++) {
        const t0 = performance.now();
        pane.dispatchEvent(new WheelEvent('wheel', { deltaY: i < 15 ? -120 : 120, clientX: r.x + r.width / 2, clientY: r.y + r.height / 2, bubbles: true, cancelable: true }));
        await new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return { median: times[15], worst: times[29] };
    })()`)) as { median: number; worst: number };
    console.log(
      `1,000-node graph: drawn after ${big.ms} ms; ${drawn} nodes in the DOM at the fitted zoom; zoom frame median ${frames.median.toFixed(1)} ms, worst ${frames.worst.toFixed(1)} ms`,
    );
  } finally {
    await f.close();
  }
}

await main();
