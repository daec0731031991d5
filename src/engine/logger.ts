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
