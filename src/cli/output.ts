/**
 * What the CLI prints: the error it exits with, plain tables for people, and a one-line log
 * format for `weft dev` (pino writes JSON lines; a person at a terminal wants to read them).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

/** An error whose message is written for the person at the terminal (no stack trace). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Render rows as an aligned text table; `undefined`/`null` cells print as `-`. */
export function formatTable(
  headers: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<unknown>>,
): string {
  const text = rows.map((row) => headers.map((_, i) => cell(row[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...text.map(line)].join('\n');
}

function cell(value: unknown): string {
  if (value === undefined || value === null || value === '') return '-';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** `2026-01-02T03:04:05.678Z` → `2026-01-02 03:04:05`; a duration between two of them. */
export function formatTime(iso: string | null | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '-';
}

export function formatDuration(
  from: string | null | undefined,
  to: string | null | undefined,
): string {
  if (!from || !to) return '-';
  const ms = Date.parse(to) - Date.parse(from);
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'err']);

/**
 * A pino destination that turns each JSON line into `12:03:04 INFO  message key=value`, with an
 * error's message (and, at debug level, its stack) on the same record. Used by `weft dev`.
 */
export function prettyDestination(
  out: NodeJS.WritableStream,
  options: { stacks?: boolean } = {},
): DestinationStream {
  return {
    write(line: string) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      const time = new Date(typeof record.time === 'number' ? record.time : Date.now())
        .toTimeString()
        .slice(0, 8);
      const level = LEVELS[record.level as number] ?? String(record.level);
      // Values come from requests (a path, a header): one that could end the line or steer the
      // terminal is written quoted and escaped, so no request can forge a log line.
      const extras = Object.entries(record)
        .filter(([k]) => !SKIP.has(k))
        .map(
          ([k, v]) =>
            `${k}=${typeof v === 'string' && PLAIN_VALUE.test(v) ? v : escapeForLog(JSON.stringify(v) ?? String(v))}`,
        );
      let text = `${time} ${level} ${escapeForLog(String(record.msg ?? ''), { keepNewlines: true })}${extras.length ? `  ${extras.join(' ')}` : ''}`;
      const err = record.err as { message?: string; stack?: string } | undefined;
      if (err)
        text +=
          options.stacks && err.stack
            ? `\n${escapeForLog(err.stack, { keepNewlines: true })}`
            : `: ${escapeForLog(err.message ?? JSON.stringify(err), { keepNewlines: true })}`;
      out.write(`${text}\n`);
    },
  };
}

/** A value written bare: no space, quote, backslash or control character. */
const PLAIN_VALUE = /^[^\s"\\\p{Cc}\u2028\u2029]*$/u;

/**
 * Escape what a terminal or a log reader would act on: C0 and C1 control characters (line breaks,
 * escape sequences), DEL and the Unicode line separators, as `\uXXXX`. With `keepNewlines` (a
 * message or stack that is multi-line by nature, like a compiler's code frame), a `\n` stays but
 * the next line is indented, so it can never read as a log line of its own.
 */
export function escapeForLog(text: string, options: { keepNewlines?: boolean } = {}): string {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, (ch) =>
    options.keepNewlines && ch === '\n'
      ? '\n    '
      : `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export type LogFormat = 'pretty' | 'json';

/** The process logger of a CLI command: JSON lines (production) or the pretty format (dev). */
export function createCliLogger(options: { format: LogFormat; level?: string }): Logger {
  const level = options.level ?? process.env.WEFT_LOG_LEVEL ?? 'info';
  if (options.format === 'json') return pino({ name: 'weft', level });
  return pino(
    { name: 'weft', level },
    prettyDestination(process.stderr, { stacks: level === 'debug' || level === 'trace' }),
  );
}

export function parseLogFormat(value: string | undefined, fallback: LogFormat): LogFormat {
  if (value === undefined) return fallback;
  if (value === 'pretty' || value === 'json') return value;
  throw new CliError(`--log-format must be "pretty" or "json"; found "${value}".`);
}
