/**
 * Graceful shutdown for the long-running commands. The first SIGINT/SIGTERM runs the cleanup
 * steps in order (each awaited; a failing one is logged and the rest still run) and exits 0, or
 * 1 if a step failed; a second signal while that is going on exits at once with status 130.
 * A command that fails while starting runs the same cleanup itself and reports its error.
 */
import type { Logger } from '../engine/logger.js';

export type ShutdownStep = { name: string; run: () => Promise<void> | void };

export function handleShutdown(
  logger: Logger,
  steps: () => readonly ShutdownStep[],
): { cleanup(): Promise<number> } {
  let cleaning: Promise<number> | undefined;
  const cleanup = (): Promise<number> => {
    cleaning ??= (async () => {
      let code = 0;
      for (const step of steps()) {
        try {
          await step.run();
        } catch (error) {
          code = 1;
          logger.error({ err: error }, `shutdown: ${step.name} failed`);
        }
      }
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      return code;
    })();
    return cleaning;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (cleaning) {
      logger.warn(`${signal} again: exiting now`);
      process.exit(130);
    }
    logger.info(`${signal}: shutting down (${signal} again to force)`);
    void cleanup().then((code) => {
      logger.info('stopped');
      process.exit(code);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { cleanup };
}
