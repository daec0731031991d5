/**
 * The CLI's HTTP client of the Weft API. Where it connects: `--url`/`--api-key`, else
 * `WEFT_URL`/`WEFT_API_KEY`, else the `dev.json` that `weft dev` writes. Every failure becomes a
 * CliError that says what to do: which URL was unreachable and how to start a server, or the
 * API's own error code and message.
 */
import { readDevState, displayPath } from './local-state.js';
import { join } from 'node:path';
import { CliError } from './output.js';

export interface ApiConnection {
  url: string;
  apiKey: string;
  /** Where the URL and the key came from, for error messages. */
  from: string;
  keyFrom: string;
}

export function resolveConnection(options: {
  url?: string;
  apiKey?: string;
  dataDir: string;
}): ApiConnection {
  const dev = readDevState(options.dataDir);
  const devFile = displayPath(join(options.dataDir, 'dev.json'));
  const url = options.url ?? process.env.WEFT_URL ?? dev?.url;
  const apiKey = options.apiKey ?? process.env.WEFT_API_KEY ?? dev?.apiKey;
  if (!url) {
    throw new CliError(
      `no Weft server to talk to: pass --url (or set WEFT_URL), or start one with \`weft dev\` in this folder (it writes ${devFile}).`,
    );
  }
  if (!apiKey) {
    throw new CliError(
      `no API key: pass --api-key (or set WEFT_API_KEY). \`weft dev\` prints its key and keeps it in ${devFile}; \`weft keys create\` makes one.`,
    );
  }
  const from = options.url ? '--url' : process.env.WEFT_URL ? 'WEFT_URL' : devFile;
  const keyFrom = options.apiKey
    ? '--api-key'
    : process.env.WEFT_API_KEY
      ? 'WEFT_API_KEY'
      : devFile;
  return { url: url.replace(/\/+$/, ''), apiKey, from, keyFrom };
}

export class ApiClient {
  constructor(
    readonly connection: ApiConnection,
    private readonly timeoutMs = 30_000,
  ) {}

  get<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return this.request<T>('GET', qs ? `${path}?${qs}` : path);
  }

  post<T>(path: string, body: unknown): Promise<{ status: number; body: T }> {
    return this.requestWithStatus<T>('POST', path, body);
  }

  patch<T>(path: string, body: unknown): Promise<{ status: number; body: T }> {
    return this.requestWithStatus<T>('PATCH', path, body);
  }

  delete(path: string): Promise<{ status: number; body: unknown }> {
    return this.requestWithStatus<unknown>('DELETE', path);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.requestWithStatus<T>(method, path, body)).body;
  }

  private async requestWithStatus<T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const target = `${this.connection.url}/api/v1${path}`;
    let response: Response;
    try {
      const init: RequestInit = {
        method,
        headers: {
          authorization: `Bearer ${this.connection.apiKey}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        signal: AbortSignal.timeout(this.timeoutMs),
      };
      if (body !== undefined) init.body = JSON.stringify(body);
      response = await fetch(target, init);
    } catch (error) {
      throw new CliError(unreachableMessage(this.connection, error));
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      throw new CliError(
        `${method} ${target} answered ${response.status} with a body that is not JSON (${text.slice(0, 120)}…). Is ${this.connection.url} a Weft server?`,
      );
    }
    if (!response.ok) throw new CliError(apiErrorMessage(response.status, parsed, this.connection));
    return { status: response.status, body: parsed as T };
  }
}

function unreachableMessage(connection: ApiConnection, error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const reason =
    (error as Error).name === 'TimeoutError'
      ? 'no answer in time'
      : cause?.code === 'ECONNREFUSED'
        ? 'connection refused'
        : (cause?.code ?? cause?.message ?? (error as Error).message);
  const start = connection.from.endsWith('dev.json')
    ? `It was last started by \`weft dev\` (${connection.from}); start it again with \`weft dev\`.`
    : `Start a server (\`weft dev\` locally) or fix ${connection.from}.`;
  return `cannot reach the Weft API at ${connection.url} (${reason}). ${start}`;
}

function apiErrorMessage(status: number, body: unknown, connection: ApiConnection): string {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof error?.code === 'string' ? error.code : `http_${status}`;
  const message = typeof error?.message === 'string' ? error.message : JSON.stringify(body);
  const hint =
    status === 401
      ? ` (the API key from ${connection.keyFrom} was rejected: revoked, or made for another server or database?)`
      : '';
  return `${code}: ${message}${hint}`;
}
