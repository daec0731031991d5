/**
 * Chaos (h): the `weft server` that clients follow runs through (SSE, GET /api/v1/runs/{id}/events)
 * is restarted under them — killed (`kill -9`) once and stopped with SIGTERM once, at seeded random
 * moments — and each client resumes on the new server with `Last-Event-ID`, as EventSource does.
 * Every client must end with exactly the events a fresh read of the whole stream gives: none lost,
 * none repeated, same order. The runs themselves are checked by the ledger checker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../support/crash-process.js';
import { budget, ChaosStage, chaosSeed, report, scaled } from './harness.js';
import { CHAOS_CHAIN } from './spec.js';

interface SseEvent {
  id: string;
  kind: string;
}

const TERMINAL = new Set(['run.succeeded', 'run.failed', 'run.canceled']);

/** Read one connection of a run's stream until it ends or breaks; events go to `onEvent`. */
async function readOnce(
  url: string,
  headers: Record<string, string>,
  onEvent: (e: SseEvent) => void,
): Promise<void> {
  const response = await fetch(url, { headers: { ...headers, accept: 'text/event-stream' } });
  if (response.status !== 200 || !response.body)
    throw new Error(`stream answered ${response.status}`);
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const message = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id: string | undefined;
      let data: string | undefined;
      for (const line of message.split('\n')) {
        if (line.startsWith('id:')) id = line.slice(3).trim();
        else if (line.startsWith('data:')) data = line.slice(5).trim();
      }
      if (id !== undefined && data !== undefined)
        onEvent({ id, kind: (JSON.parse(data) as { kind: string }).kind });
    }
  }
}

describe('chaos: weft server restarted while clients follow runs over SSE', () => {
  let stage: ChaosStage;
  beforeAll(async () => {
    stage = await ChaosStage.create();
  }, budget(120_000));
  afterAll(async () => {
    await stage?.destroy();
  });

  it(
    '(h) kill -9 and SIGTERM of the server mid-stream: each client resumes with Last-Event-ID, no event lost or repeated',
    async () => {
      const { seed, random } = chaosSeed('sse');
      await Promise.all([1, 2].map(() => stage.startWorker({ stepMs: 1200 })));
      let server = await stage.startServer();
      const auth = { authorization: `Bearer ${await stage.key()}` };
      const inputs = Array.from({ length: scaled(12) }, (_, i) => 500 + i);
      const runIds = await stage.trigger('chaos-chain', inputs);

      let reconnects = 0;
      const follow = async (runId: string): Promise<SseEvent[]> => {
        const events: SseEvent[] = [];
        const deadline = Date.now() + 90_000;
        while (!TERMINAL.has(events.at(-1)?.kind ?? '')) {
          if (Date.now() > deadline) throw new Error(`${runId}: the stream never reached its end`);
          const last = events.at(-1)?.id;
          try {
            await readOnce(
              `${server.url}/api/v1/runs/${runId}/events`,
              last ? { ...auth, 'last-event-id': last } : auth,
              (e) => events.push(e),
            );
          } catch {
            // the server went away mid-stream or is not up yet: come back, as EventSource does
          }
          if (!TERMINAL.has(events.at(-1)?.kind ?? '')) {
            reconnects++;
            await sleep(200);
          }
        }
        return events;
      };
      const followers = runIds.map((id) => follow(id));

      const restarts: string[] = [];
      for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
        await sleep(800 + random() * 1500);
        const old = server;
        const exited = new Promise((resolve) => old.process.child.once('exit', resolve));
        old.process.child.kill(signal);
        await exited;
        restarts.push(signal);
        server = await stage.startServer();
      }
      const seen = await Promise.all(followers);

      for (const [i, runId] of runIds.entries()) {
        const full: SseEvent[] = [];
        await readOnce(`${server.url}/api/v1/runs/${runId}/events`, auth, (e) => full.push(e));
        expect(
          seen[i]!.map((e) => e.id),
          `${runId}: events seen across restarts`,
        ).toEqual(full.map((e) => e.id));
        expect(new Set(seen[i]!.map((e) => e.id)).size).toBe(seen[i]!.length);
      }
      const result = await stage.check(
        runIds.map((runId, i) => ({ runId, spec: CHAOS_CHAIN, input: inputs[i] })),
      );
      report('sse', seed, { restarts, reconnects, clients: runIds.length }, result);
      expect(result.violations, `seed ${seed}`).toEqual([]);
      expect(reconnects, 'the restarts cut streams in flight').toBeGreaterThan(0);
    },
    budget(180_000),
  );
});
