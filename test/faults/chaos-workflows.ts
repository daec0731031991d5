/**
 * The workflow module the chaos scenarios hand to real `weft worker` processes
 * (`weft worker --workflows test/faults/chaos-workflows.ts`). Every code step appends its start to
 * the side-effect ledger at CHAOS_LEDGER_URL (ledger.ts) before doing anything else.
 */
import { buildWorkflow, CHAOS_CHAIN, CHAOS_MIX, CHAOS_ONE } from './spec.js';
import { LEDGER_ENV, ledgerAppender } from './ledger.js';

const url = process.env[LEDGER_ENV];
if (!url)
  throw new Error(
    `${LEDGER_ENV} is not set: this module is loaded by the chaos scenarios (test/faults/chaos.test.ts), which point it at the ledger database.`,
  );
const ledger = ledgerAppender(url);
// CHAOS_STEP_MS: each step holds a random 0..n ms after its start is recorded, so that kills,
// pauses and cuts land while steps run.
const holdMs = Number(process.env.CHAOS_STEP_MS ?? 0);
const append = async (ctx: Parameters<typeof ledger.append>[0]) => {
  await ledger.append(ctx);
  if (holdMs > 0) await new Promise((r) => setTimeout(r, Math.random() * holdMs));
};

export const chaosMix = buildWorkflow(CHAOS_MIX, append);
export const chaosOne = buildWorkflow(CHAOS_ONE, append);
export const chaosChain = buildWorkflow(CHAOS_CHAIN, append);
