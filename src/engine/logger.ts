import { pino, type Logger } from 'pino';

export type { Logger };

/** The process logger: JSON lines (pino). `WEFT_LOG_LEVEL` overrides the level. */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: options.name ?? 'weft',
    level: options.level ?? process.env.WEFT_LOG_LEVEL ?? 'info',
  });
}

/** A logger that drops everything (tests that assert on rows, not log lines). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** What an attempt logs with: a line's fields (optional) and message, at four levels. */
export interface AttemptLog {
  debug(fieldsOrMessage: object | string, message?: string): void;
  info(fieldsOrMessage: object | string, message?: string): void;
  warn(fieldsOrMessage: object | string, message?: string): void;
  error(fieldsOrMessage: object | string, message?: string): void;
}

/**
 * An attempt's logger, bound to its run, step and attempt. pino's child is made at the first
 * line: most attempts succeed without logging, and `child` serializes its bindings when it is
 * made (with the closures of a per-attempt logger, ~5 µs of a chained step's client CPU:
 * bench/RESULTS.md, "Issue 8, session 11"). A line below the level builds nothing.
 */
export class AttemptLogger implements AttemptLog {
  private child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly claim: { runId: string; stepKey: string; attempt: number },
  ) {}

  debug(fieldsOrMessage: object | string, message?: string): void {
    this.write('debug', fieldsOrMessage, message);
  }

  info(fieldsOrMessage: object | string, message?: string): void {
    this.write('info', fieldsOrMessage, message);
  }

  warn(fieldsOrMessage: object | string, message?: string): void {
    this.write('warn', fieldsOrMessage, message);
  }

  error(fieldsOrMessage: object | string, message?: string): void {
    this.write('error', fieldsOrMessage, message);
  }

  private write(
    level: 'debug' | 'info' | 'warn' | 'error',
    fieldsOrMessage: object | string,
    message: string | undefined,
  ): void {
    if (!this.parent.isLevelEnabled(level)) return;
    const { runId, stepKey, attempt } = this.claim;
    this.child ??= this.parent.child({ runId, step: stepKey, attempt });
    if (typeof fieldsOrMessage === 'string') this.child[level](fieldsOrMessage);
    else this.child[level](fieldsOrMessage, message);
  }
}
