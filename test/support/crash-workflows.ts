/**
 * Workflows for the crash tests, registered by the worker child processes (crash-worker.ts). The
 * parent test only triggers them by id: it never registers them itself, so the version a run is
 * pinned to is always the one the children hold (vitest and tsx transform code differently, and
 * a step's hash includes its code text).
 *
 * Every step that matters records its start in `public.crash_starts` through the probe — a
 * separate connection, awaited before the step goes on — so a start is durable even when the next
 * thing the step does is kill its own process.
 */
import { defineWorkflow } from '../../src/index.js';
import type { StepContext } from '../../src/index.js';

/** What a worker child is told (one JSON env var, see crash-process.ts). */
export interface CrashWorkerConfig {
  databaseUrl: string;
  environmentId: string;
  workerId: string;
  leaseMs: number;
  heartbeatMs: number;
  concurrency: number;
  pollIntervalMs: number;
  /** `crash-chain` steps sleep a random time in this range (ms). */
  stepMs: [number, number];
  /** `crash-fencing`: attempt 1 stops its own process (SIGSTOP) right after recording its start. */
  stopOnFirstAttempt?: boolean;
  /** `crash-fencing`: how long later attempts hold before returning (ms). */
  holdMs?: number;
}

export const CRASH_WORKER_ENV = 'WEFT_CRASH_WORKER';

/** The side effects step code needs: who runs it, and a durable record of each start. */
export interface CrashProbe {
  config: CrashWorkerConfig;
  /** Insert a row into `public.crash_starts` and wait for it to commit. */
  recordStart(ctx: StepContext): Promise<void>;
}

export interface ChainOutput {
  run: string;
  step: string;
  attempt: number;
  worker: string;
  value: number;
}

export interface FencingOutput {
  attempt: number;
  worker: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function crashWorkflows(probe: CrashProbe) {
  const { config } = probe;
  const hold = () => {
    const [min, max] = config.stepMs;
    return sleep(min + Math.random() * (max - min));
  };
  const output = (ctx: StepContext, value: number): ChainOutput => ({
    run: ctx.runId,
    step: ctx.stepKey,
    attempt: ctx.attempt,
    worker: config.workerId,
    value,
  });

  /** Three chained steps that take a while; the output names the attempt that produced it. */
  const chain = defineWorkflow<{ n: number }>('crash-chain')
    .step('a', { retry: { maxAttempts: 50, minDelay: 10, maxDelay: 50 } }, async ({ n }, ctx) => {
      await probe.recordStart(ctx);
      await hold();
      return output(ctx, n + 1);
    })
    .step(
      'b',
      { after: 'a', retry: { maxAttempts: 50, minDelay: 10, maxDelay: 50 } },
      async (prev, ctx) => {
        await probe.recordStart(ctx);
        await hold();
        return output(ctx, prev.value * 2);
      },
    )
    .step(
      'c',
      { after: 'b', retry: { maxAttempts: 50, minDelay: 10, maxDelay: 50 } },
      async (prev, ctx) => {
        await probe.recordStart(ctx);
        await hold();
        return output(ctx, prev.value - 3);
      },
    );

  /** `boom` kills its own process every time it starts; it may start at most three times. */
  const selfKill = defineWorkflow<string>('crash-self-kill')
    .step('prep', (input) => ({ prepared: input }))
    .step(
      'boom',
      { after: 'prep', retry: { maxAttempts: 3, minDelay: 10, maxDelay: 50 } },
      async (_prepared, ctx) => {
        await probe.recordStart(ctx);
        process.kill(process.pid, 'SIGKILL');
        return new Promise<never>(() => {});
      },
    );

  /**
   * `slow`: with `stopOnFirstAttempt`, attempt 1 freezes its own process mid-step (SIGSTOP, so
   * the pause lands exactly there) and, once continued, returns at once — before any timer of
   * the worker fires, so the worker really sends its late commit instead of noticing the lost
   * lease first. Later attempts hold `holdMs`. The state patch names the attempt's worker.
   */
  const fencing = defineWorkflow<string>('crash-fencing')
    .step(
      'slow',
      { retry: { maxAttempts: 3, minDelay: 10, maxDelay: 50 } },
      async (_input, ctx) => {
        await probe.recordStart(ctx);
        if (config.stopOnFirstAttempt && ctx.attempt === 1) {
          process.kill(process.pid, 'SIGSTOP');
        } else {
          await sleep(config.holdMs ?? 0);
        }
        ctx.state.by = config.workerId;
        const result: FencingOutput = { attempt: ctx.attempt, worker: config.workerId };
        return result;
      },
    )
    .step('after', { after: 'slow' }, (slow) => ({ from: slow.worker, attempt: slow.attempt }));

  return [chain, selfKill, fencing] as const;
}
