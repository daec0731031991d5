import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AttemptLogger } from '../src/engine/logger.js';

describe("an attempt's logger (pino's child made at its first line)", () => {
  it('binds the run, step and attempt to each line; a line below the level builds nothing', () => {
    const lines: Array<Record<string, unknown>> = [];
    const parent = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    let children = 0;
    const child = parent.child.bind(parent);
    parent.child = ((...args: Parameters<typeof child>) => (
      children++,
      child(...args)
    )) as typeof child;
    const log = new AttemptLogger(parent, { runId: 'run_a0x', stepKey: 'charge', attempt: 2 });
    log.debug({ detail: 1 }, 'below the level');
    expect(children).toBe(0);
    log.warn({ err: 'boom' }, 'attempt failed; retrying');
    log.info('second line');
    expect(children).toBe(1);
    expect(lines).toMatchObject([
      {
        level: 40,
        runId: 'run_a0x',
        step: 'charge',
        attempt: 2,
        err: 'boom',
        msg: 'attempt failed; retrying',
      },
      { level: 30, runId: 'run_a0x', step: 'charge', attempt: 2, msg: 'second line' },
    ]);
    expect(lines).toHaveLength(2);
  });
});
