import { randomBytes } from 'node:crypto';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { silentLogger } from '../../src/engine/logger.js';
import type { AnyWorkflow } from '../../src/engine/registry.js';
import type { WorkerOptions } from '../../src/engine/worker.js';
import type { Stores } from '../../src/store/stores.js';

/** A fresh tenant (so tests sharing a database never see each other's runs) and an engine on it. */
export async function startTestEngine(
  stores: Stores,
  workflows: readonly AnyWorkflow[],
  options: {
    worker?: WorkerOptions | false;
    saveDataclips?: boolean;
    reaperIntervalMs?: number | false;
    /** Reuse an environment (several engines on one tenant, e.g. a restart). */
    environmentId?: string;
  } = {},
): Promise<Engine> {
  const suffix = randomBytes(4).toString('hex');
  const environmentId =
    options.environmentId ??
    (
      await stores.control.createTenant(
        { organization: `org-${suffix}`, project: `prj-${suffix}`, environment: 'test' },
        { saveDataclips: options.saveDataclips ?? true },
      )
    ).environmentId;
  const engineOptions: EngineOptions = {
    stores,
    environmentId,
    timerIntervalMs: 50,
    workflows,
    logger: silentLogger(),
    reaperIntervalMs: options.reaperIntervalMs ?? 200,
    worker:
      options.worker === false ? false : { pollIntervalMs: 100, concurrency: 8, ...options.worker },
  };
  return Engine.start(engineOptions);
}
