/**
 * Waiting and pausing. The import sleeps until its window (here: three seconds) holding no worker
 * and surviving restarts, parses the rows in parallel — collecting bad rows instead of failing
 * fast — and loads them. `load` pauses the run when it runs out of retries instead of failing it:
 * fix the code (weft dev reloads it), then `weft runs resume <runId> --version current`.
 *
 *   weft trigger nightly-import --input '{"rows":["ada,36","grace,85","oops"]}' --wait
 */
import { defineWorkflow, TerminalError } from '../src/index.js';

export const nightlyImport = defineWorkflow<{ rows: string[] }>('nightly-import', {
  description: 'Sleep until the window, parse rows in parallel (collecting failures), then load.',
})
  .sleep('window', { duration: '3s' })
  .parallel('parse', {
    after: 'window',
    items: (input) => input.rows,
    concurrency: 5,
    onBranchFailure: 'collect',
    body: (b) =>
      b.step('row', { retry: { maxAttempts: 1 } }, (line) => {
        const [name, age] = line.split(',');
        if (!name || !age || Number.isNaN(Number(age)))
          throw new TerminalError(`row "${line}" is not "name,age"`);
        return { name, age: Number(age) };
      }),
  })
  .step(
    'load',
    { after: 'parse', retry: { maxAttempts: 2, minDelay: '1s' }, onExhausted: 'pause' },
    (rows) => {
      const good = rows.filter((r) => !(typeof r === 'object' && r !== null && 'error' in r));
      return { loaded: good.length, rejected: rows.length - good.length };
    },
  );
