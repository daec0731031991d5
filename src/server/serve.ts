/**
 * Serving the app over HTTP with Node's http server (@hono/node-server).
 */
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';

export interface StartServerOptions {
  /** 0 picks any free port (tests); the chosen one is returned. */
  port: number;
  /** Default 127.0.0.1: reachable from this machine only. Use 0.0.0.0 to listen on every interface. */
  hostname?: string;
}

export interface RunningServer {
  url: string;
  port: number;
  /**
   * Stop accepting connections, let requests in flight finish, and resolve when the server has
   * closed. Idle keep-alive connections are closed at once so they cannot hold shutdown open.
   */
  close(): Promise<void>;
}

/** Anything with a fetch handler: the app `createApp` returns. */
export interface FetchApp {
  fetch: (request: Request, ...rest: never[]) => Response | Promise<Response>;
}

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
        resolve({
          url: `http://${host}:${info.port}`,
          port: info.port,
          close: () => closeServer(server!),
        });
      },
    );
    server.once('error', onError);
  });
}

function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error?: Error) => (error ? reject(error) : resolve()));
    if ('closeIdleConnections' in server) server.closeIdleConnections();
  });
}
