/**
 * Serving the app over HTTP with Node's http server (@hono/node-server), and draining it.
 *
 * Draining is what a rolling deploy behind a load balancer needs: `close()` stops accepting
 * connections, tells the app it is shutting down (event streams end with an SSE `retry:` hint so
 * EventSource reconnects — to another process — with `Last-Event-ID`; `/readyz` answers 503;
 * responses carry `Connection: close`), lets the requests in flight finish, and after
 * `drainTimeoutMs` cuts whatever is still open. A request either gets its whole answer or never
 * reached this process (the connection was refused and the client or balancer retries elsewhere).
 */
import { getRequestListener, serve, type ServerType } from '@hono/node-server';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type CreateAppOptions } from './app.js';
import { beginDrain } from './edge.js';
import type { ServerApp } from './types.js';

export interface StartServerOptions {
  /** 0 picks any free port (tests); the chosen one is returned. */
  port: number;
  /** Default 127.0.0.1: reachable from this machine only. Use 0.0.0.0 to listen on every interface. */
  hostname?: string;
  /**
   * `close()`: how long requests in flight may take to finish before their connections are cut.
   * Default 10 s.
   */
  drainTimeoutMs?: number;
  /**
   * Longest time to receive a whole request, headers and body (Node's `requestTimeout`; past it
   * Node answers 408 and closes the connection). Guards against slow uploads holding sockets.
   * Default: Node's (300 s).
   */
  requestTimeoutMs?: number;
  /**
   * How long an idle keep-alive connection stays open (Node's `keepAliveTimeout`). Behind a load
   * balancer make it longer than the balancer's idle timeout (60 s on most), so the balancer
   * closes first and never sends a request on a connection this side is closing. Default: Node's (5 s).
   */
  keepAliveTimeoutMs?: number;
}

export interface RunningServer {
  url: string;
  port: number;
  /**
   * Drain and close: stop accepting connections, end the app's event streams with a reconnect
   * hint, let requests in flight finish (up to `drainTimeoutMs`, then cut them), and resolve when
   * the server has closed. Idle keep-alive connections are closed at once.
   */
  close(): Promise<void>;
}

/** Anything with a fetch handler: the app `createApp` returns. */
export interface FetchApp {
  fetch: (request: Request, ...rest: never[]) => Response | Promise<Response>;
}

const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/**
 * Listen on a port. Resolves once the socket is bound, and rejects when it cannot be (port in
 * use, permission denied).
 *
 * @example
 * const server = await startServer(createApp({ stores }), { port: 0 });
 * await fetch(`${server.url}/healthz`);
 * await server.close();
 */
export function startServer(app: FetchApp, options: StartServerOptions): Promise<RunningServer> {
  const hostname = options.hostname ?? '127.0.0.1';
  const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    let server: ServerType | undefined = undefined;
    const onError = (error: Error) => reject(error);
    server = serve(
      {
        fetch: app.fetch as (request: Request) => Response | Promise<Response>,
        port: options.port,
        hostname,
      },
      (info: AddressInfo) => {
        server!.off('error', onError);
        const host = hostname.includes(':') ? `[${hostname}]` : hostname;
        let closing: Promise<void> | undefined;
        resolve({
          url: `http://${host}:${info.port}`,
          port: info.port,
          close: () => (closing ??= drainAndClose(app, server as Server, drainTimeoutMs)),
        });
      },
    );
    const http = server as Server;
    if (options.requestTimeoutMs !== undefined) http.requestTimeout = options.requestTimeoutMs;
    if (options.keepAliveTimeoutMs !== undefined) {
      http.keepAliveTimeout = options.keepAliveTimeoutMs;
      // Node requires the headers timeout to outlast keep-alive, or a reused connection can be
      // cut while its next request's headers are arriving.
      http.headersTimeout = Math.max(http.headersTimeout, options.keepAliveTimeoutMs + 1000);
    }
    server.once('error', onError);
  });
}

function drainAndClose(app: FetchApp, server: Server, drainTimeoutMs: number): Promise<void> {
  beginDrain(app);
  return new Promise((resolve, reject) => {
    // Past the drain timeout, whatever is still open is cut (the close callback then fires).
    const cut = setTimeout(() => server.closeAllConnections(), drainTimeoutMs);
    cut.unref();
    // Connections that finish their response go idle; close them as they do (a keep-alive client
    // would otherwise hold the process until its own timeout).
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const finish = (error?: Error) => {
      clearInterval(sweep);
      clearTimeout(cut);
      if (error && (error as NodeJS.ErrnoException).code !== 'ERR_SERVER_NOT_RUNNING')
        reject(error);
      else resolve();
    };
    server.close(finish);
    server.closeIdleConnections();
  });
}

/** `createApp`'s options and `startServer`'s, for `createServer`. */
export interface CreateServerOptions extends CreateAppOptions, StartServerOptions {}

/**
 * `createApp` and `startServer` in one call: the API over `stores`, listening on `port`.
 *
 * @example
 * import { createServer, createStores, openExecutor } from 'weft';
 * const stores = createStores({ control: await openExecutor(process.env.DATABASE_URL!) });
 * const server = await createServer({ stores, port: 3700, hostname: '0.0.0.0' });
 * process.once('SIGTERM', () => void server.close().then(() => stores.close()));
 */
export async function createServer(
  options: CreateServerOptions,
): Promise<RunningServer & { app: ServerApp }> {
  const app = createApp(options);
  return { ...(await startServer(app, options)), app };
}

/**
 * The app as a `node:http` request handler, for mounting it in a Node server of your own (route
 * the paths you give Weft to it). Closing and draining that server is then yours: pass
 * `shutdownSignal` to `createApp` so event streams end when you shut down.
 *
 * @example
 * const weft = createRequestListener(createApp({ stores }));
 * http.createServer((req, res) => (req.url?.startsWith('/api/') ? weft(req, res) : mine(req, res)));
 */
export function createRequestListener(
  app: FetchApp,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return getRequestListener(app.fetch as (request: Request) => Response | Promise<Response>);
}
