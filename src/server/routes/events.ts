/**
 * `GET /api/v1/runs/{runId}/events`: every transition of a run as Server-Sent Events, live.
 *
 * The stream is a cursor over the run's event log (`run_events` rows, and the attempt and step run
 * rows that are `step.started` / `step.succeeded` events: one id sequence, src/store/runs/events.ts):
 * each SSE message carries the event id as its `id:`, and the stream always re-reads the log after
 * the last id it sent. It reads
 * through the engine's feed (src/engine/run-event-feed.ts); wake-ups come from the run observer
 * (src/engine/run-observer.ts: the `events` and `runEnded` channels), so any server process
 * streams any run, whichever engine executes it; a re-read every `pollIntervalMs` covers a missed notification. After the
 * run's terminal event (`run.succeeded`, `run.failed`, `run.canceled`) is sent, the stream ends.
 *
 * Draining: when the process shuts down (`drain` aborts), each stream finishes the message it is
 * writing, sends a short `retry:` hint and ends. EventSource reconnects after that hint — through
 * the load balancer, to another process — with `Last-Event-ID`, so nothing is missed or repeated.
 *
 * Resuming: `Last-Event-ID` (the header EventSource sends on reconnect) or `?lastEventId=` starts
 * after that id — the events missed in between, none twice. Resuming after the terminal event
 * answers 204, which tells EventSource to stop reconnecting.
 *
 * Ids are allocated when a row is inserted, not when it commits: two transactions writing events
 * of one run at once (parallel branches) can commit out of id order. The feed reads through
 * RunStore.listSettledRunEvents, which holds an event back until every transaction that was in
 * flight at the read has ended, so the cursor never passes an id that could still appear.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { Logger } from '../../engine/logger.js';
import type { RunEventRecord } from '../../store/rows.js';
import { TERMINAL_RUN_STATUSES } from '../../store/rows.js';
import { ApiError, quoteId, toErrorResponse, isRunId, runNotFound } from '../errors.js';
import { openRunEventFeed } from '../../engine/run-event-feed.js';
import type { RunSubscription } from '../../engine/run-observer.js';
import { errorResponses, requiresKey } from '../openapi.js';
import { presentEventData } from '../presenters.js';
import { RunEventsQuerySchema, RunParamsSchema, type RunEventSchema } from '../schemas.js';
import { dbText } from '../db-text.js';
import type { ServerApp, ServerDeps } from '../types.js';

export interface LiveEventsOptions {
  /** Re-read the table this often without a wake-up (missed NOTIFY). Default 3 s. */
  pollIntervalMs?: number;
  /** A `: keep-alive` comment after this long without a message, for proxies. Default 15 s. */
  keepAliveMs?: number;
}

/** Events read per query; a run with more simply takes several reads. */
const PAGE_SIZE = 500;
/** What EventSource waits before reconnecting after a dropped connection (SSE `retry:`). */
const RECONNECT_MS = 1000;
/** The reconnect hint of a stream ended by a shutdown: the client should move on at once. */
export const DRAIN_RECONNECT_MS = 250;
const TERMINAL_EVENTS = new Set(TERMINAL_RUN_STATUSES.map((s) => `run.${s}`));
/** Largest id accepted as a cursor: run_events ids are bigints, read here as safe integers. */
const EVENT_ID = /^\d{1,15}$/;

const streamRunEvents = createRoute({
  method: 'get',
  path: '/api/v1/runs/{runId}/events',
  operationId: 'streamRunEvents',
  tags: ['Runs'],
  summary: 'Stream the events of a run (SSE)',
  description:
    'Server-Sent Events: every transition of the run in order, live, from any server process. Each message is `id: <event id>` and `data: <RunEvent JSON>`. ' +
    'The stream ends after the terminal event (`run.succeeded`, `run.failed` or `run.canceled`); while idle it sends `: keep-alive` comments. ' +
    'Send `Last-Event-ID` (or `?lastEventId=`) to resume after an event: exactly the events after it, none twice. Resuming after the terminal event answers 204.',
  security: requiresKey,
  request: {
    params: RunParamsSchema,
    query: RunEventsQuerySchema,
    headers: z.object({
      'last-event-id': dbText()
        .optional()
        .openapi({
          param: { name: 'last-event-id', in: 'header' },
          description: 'Resume after this event id (EventSource sends it on reconnect).',
        }),
    }),
  },
  responses: {
    200: {
      description:
        'An event stream. `data:` is a RunEvent: `{ id, runId, kind, stepKey, attempt, data, createdAt }`.',
      content: { 'text/event-stream': { schema: z.string() } },
    },
    204: { description: 'The run has ended and no events follow `Last-Event-ID`.' },
    ...errorResponses(400, 401, 404),
  },
});

export function registerEventRoutes(
  app: ServerApp,
  deps: ServerDeps,
  options: LiveEventsOptions = {},
  drain: AbortSignal = new AbortController().signal,
): void {
  const { runs } = deps.stores;
  const pollIntervalMs = options.pollIntervalMs ?? 3000;
  const keepAliveMs = options.keepAliveMs ?? 15_000;

  app.openapi(streamRunEvents, async (c) => {
    const { environmentId } = c.get('identity');
    const { runId } = c.req.valid('param');
    const query = c.req.valid('query');
    if (!isRunId(runId)) throw runNotFound(runId);
    const after = parseLastEventId(runId, c.req.header('last-event-id') ?? query.lastEventId);
    // The feed subscribes before its first read: an event committed after it wakes the stream.
    const feed = await openRunEventFeed(runs, environmentId, runId, after, PAGE_SIZE);
    if (!feed) throw runNotFound(runId);
    const { first, read, subscription } = feed;
    try {
      if (feed.finished) {
        subscription.close();
        return c.body(null, 204);
      }
      // nginx buffers proxied responses unless told not to; a buffered stream is not live.
      c.header('X-Accel-Buffering', 'no');
      return streamSSE(c, (stream) =>
        pump(stream, {
          first,
          after,
          read,
          subscription,
          pollIntervalMs,
          keepAliveMs,
          logger: deps.logger,
          requestId: c.get('requestId'),
          drain,
        }),
      ) as unknown as Response & { _status: 200 };
    } catch (error) {
      subscription.close();
      throw error;
    }
  });
}

interface PumpOptions {
  first: RunEventRecord[];
  after: number;
  read: (afterId: number) => Promise<RunEventRecord[]>;
  subscription: RunSubscription;
  pollIntervalMs: number;
  keepAliveMs: number;
  logger: Logger;
  requestId: string;
  drain: AbortSignal;
}

/**
 * Send events until the terminal one, the client leaves, or the read fails. A failed read (the
 * database went away) ends the stream with an `error` event carrying the usual envelope; the
 * client reconnects with its last id and loses nothing.
 */
async function pump(stream: SSEStreamingApi, o: PumpOptions): Promise<void> {
  const left = new AbortController();
  stream.onAbort(() => left.abort());
  // A shutdown ends the stream like a client leaving, then leaves a reconnect hint (below).
  const onDrain = () => left.abort();
  if (o.drain.aborted) left.abort();
  else o.drain.addEventListener('abort', onDrain, { once: true });
  let after = o.after;
  let batch = o.first;
  let lastWrite = Date.now();
  // An event transaction that was already past its NOTIFY check when this stream registered
  // its watch commits without a wake-up: look again soon after the start, not a poll later.
  let settle = true;
  try {
    await stream.write(`retry: ${RECONNECT_MS}\n\n`);
    for (;;) {
      for (const event of batch) {
        await stream.writeSSE({ id: event.id, data: JSON.stringify(presentRunEvent(event)) });
        after = Number(event.id);
        if (TERMINAL_EVENTS.has(event.kind)) return;
      }
      if (batch.length > 0) lastWrite = Date.now();
      if (left.signal.aborted) return;
      if (batch.length < PAGE_SIZE) {
        const idle = Date.now() - lastWrite;
        const woke = await o.subscription.wait(
          Math.max(1, Math.min(settle ? 250 : o.pollIntervalMs, o.keepAliveMs - idle)),
          left.signal,
        );
        settle = false;
        if (left.signal.aborted) return;
        if (!woke && Date.now() - lastWrite >= o.keepAliveMs) {
          await stream.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
      }
      batch = await o.read(after);
    }
  } catch (error) {
    const { body, unexpected } = toErrorResponse(error, o.requestId);
    if (unexpected)
      o.logger.error({ err: error, requestId: o.requestId }, 'event stream failed unexpectedly');
    await stream.writeSSE({ event: 'error', data: JSON.stringify(body) });
  } finally {
    o.drain.removeEventListener('abort', onDrain);
    o.subscription.close();
    if (o.drain.aborted && !stream.aborted && !stream.closed)
      await stream.write(`retry: ${DRAIN_RECONNECT_MS}\n\n`).catch(() => {});
  }
}

export function presentRunEvent(event: RunEventRecord): z.infer<typeof RunEventSchema> {
  return {
    id: event.id,
    runId: event.runId,
    kind: event.kind,
    stepKey: event.stepKey,
    attempt: event.attempt,
    data: presentEventData(event.data),
    createdAt: event.createdAt,
  };
}

function parseLastEventId(runId: string, value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 0;
  const trimmed = value.trim();
  if (!EVENT_ID.test(trimmed)) {
    throw new ApiError(
      'bad_request',
      `Last-Event-ID ${quoteId(value)} for run ${quoteId(runId)} is not an event id: expected the decimal \`id:\` of an event this stream sent (e.g. 42). Omit it to start from the run's first event.`,
      { lastEventId: value },
    );
  }
  return Number(trimmed);
}
