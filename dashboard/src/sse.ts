/**
 * The run event stream (`GET /api/v1/runs/{id}/events`) read with fetch(): EventSource cannot
 * send an Authorization header. A small parser for the SSE wire format (RFC: lines, `id:`,
 * `data:`, blank line ends a message, `:` comments), and a loop that reconnects with
 * `Last-Event-ID` after a dropped connection, so no event is missed or seen twice.
 */
import { authHeaders, type RunEvent } from './api';
import { keyRefused } from './auth';

export interface SseMessage {
  id: string | null;
  event: string | null;
  data: string;
}

/** Feed text chunks; get whole messages back (a message may span chunks). */
export class SseParser {
  private buffer = '';
  private id: string | null = null;
  private event: string | null = null;
  private data: string[] = [];

  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const nl = this.buffer.search(/\r\n|\r|\n/);
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl);
      const sepLen = this.buffer.startsWith('\r\n', nl) ? 2 : 1;
      this.buffer = this.buffer.slice(nl + sepLen);
      if (line === '') {
        if (this.data.length > 0)
          out.push({ id: this.id, event: this.event, data: this.data.join('\n') });
        this.data = [];
        this.event = null;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'id') this.id = value;
      else if (field === 'event') this.event = value;
    }
    return out;
  }
}

export interface FollowOptions {
  onEvent(event: RunEvent): void;
  /** Connection state for the page's "live" badge. */
  onState?(state: 'connecting' | 'live' | 'ended' | 'error', detail?: string): void;
  signal: AbortSignal;
  /** Start after this event id (events already shown). */
  lastEventId?: string | null;
}

const TERMINAL = new Set(['run.succeeded', 'run.failed', 'run.canceled']);

/** Follows a run's events until its terminal event, the signal aborts, or the key is refused. */
export async function followRunEvents(runId: string, options: FollowOptions): Promise<void> {
  let lastId = options.lastEventId ?? null;
  let delay = 500;
  while (!options.signal.aborted) {
    options.onState?.('connecting');
    try {
      const headers: Record<string, string> = { ...authHeaders(), accept: 'text/event-stream' };
      if (lastId) headers['last-event-id'] = lastId;
      const res = await fetch(`/api/v1/runs/${encodeURIComponent(runId)}/events`, {
        headers,
        signal: options.signal,
      });
      if (res.status === 204) {
        options.onState?.('ended');
        return;
      }
      if (res.status === 401) {
        keyRefused('The API key was refused while following the run.');
        options.onState?.('error', 'The API key was refused.');
        return;
      }
      if (!res.ok || !res.body) {
        options.onState?.('error', `The event stream answered ${res.status}.`);
        if (res.status === 404) return;
        throw new Error(`status ${res.status}`);
      }
      options.onState?.('live');
      delay = 500;
      const parser = new SseParser();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const message of parser.push(value)) {
          if (message.id) lastId = message.id;
          let event: RunEvent;
          try {
            event = JSON.parse(message.data) as RunEvent;
          } catch {
            continue;
          }
          options.onEvent(event);
          if (TERMINAL.has(event.kind)) {
            options.onState?.('ended');
            await reader.cancel().catch(() => {});
            return;
          }
        }
      }
    } catch (error) {
      if (options.signal.aborted) return;
      options.onState?.('error', (error as Error).message);
    }
    // The stream dropped before the run ended: reconnect after a short, growing pause.
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 5000);
  }
}
