import { describe, expect, it } from 'vitest';
import { WeftError } from '../src/core/errors.js';
import { AttemptAbort } from '../src/engine/attempt-abort.js';

describe('AttemptAbort (how a running attempt is abandoned)', () => {
  it('race settles with the code when nothing aborts it', async () => {
    const abort = new AttemptAbort();
    await expect(abort.race(Promise.resolve(42))).resolves.toBe(42);
    await expect(abort.race(Promise.reject(new Error('the step threw')))).rejects.toThrow(
      'the step threw',
    );
    expect(abort.aborted).toBe(false);
  });

  it('an abort rejects the race at once with its reason; the first reason wins', async () => {
    const abort = new AttemptAbort();
    const never = new Promise<never>(() => {});
    const raced = abort.race(never);
    const lost = new WeftError('lease_lost', 'attempt 1 of step run sr_x lost its lease');
    abort.abort(lost);
    abort.abort(new WeftError('run_canceled', 'run run_x was canceled'));
    await expect(raced).rejects.toBe(lost);
    expect(abort.aborted).toBe(true);
    expect(abort.reason).toBe(lost);
    await expect(abort.race(Promise.resolve(1))).rejects.toBe(lost);
  });

  it('ctx.signal read before the abort fires; read after it, it is already aborted with the reason', () => {
    const before = new AttemptAbort();
    const signal = before.signal;
    let fired: unknown;
    signal.addEventListener('abort', () => (fired = signal.reason));
    const timeout = new WeftError('step_timeout', 'Step `s` timed out after 5 ms');
    before.abort(timeout);
    expect(fired).toBe(timeout);
    expect(before.signal).toBe(signal);

    const after = new AttemptAbort();
    after.abort(timeout);
    expect(after.signal.aborted).toBe(true);
    expect(after.signal.reason).toBe(timeout);
  });
});
