/**
 * Loops, a limit and a sub-workflow. `forEach` sends to each subscriber in turn (iteration `i` of
 * step `send` is the step run `send[i]`); a router inside the loop skips unsubscribed readers.
 * `send` has a concurrency limit of 2 across all runs, as a mail provider's rate limit would
 * demand. Then `times` retries a delivery report three times, a `while` loop polls until the
 * provider says every message is delivered, and a sub-workflow sends a summary through the
 * `welcome-email` workflow as a child run.
 *
 *   weft trigger newsletter --input '{"issue":"#42","subscribers":[{"email":"ada@example.com"},{"email":"bob@example.com","unsubscribed":true}]}' --wait
 */
import { defineWorkflow } from '../src/index.js';
import { mailer } from './_services.js';

export interface Newsletter {
  issue: string;
  subscribers: Array<{ email: string; unsubscribed?: boolean }>;
}

export const newsletter = defineWorkflow<Newsletter>('newsletter', {
  description: 'Send an issue to each subscriber, poll delivery, report through a child run.',
})
  .forEach('each', {
    items: (n) => n.subscribers.map((s) => ({ ...s, issue: n.issue })),
    body: (each) =>
      each
        .router('subscribed', {}, (s) => (s.unsubscribed ? 'skip' : 'send'))
        .step('send', { after: { step: 'subscribed', branch: 'send' }, concurrency: 2 }, (s, ctx) =>
          mailer.send(
            { to: s.email, subject: `Issue ${s.issue}` },
            { idempotencyKey: ctx.idempotencyKey },
          ),
        )
        .step('skipped', { after: { step: 'subscribed', branch: 'skip' } }, (s) => ({
          skipped: s.email,
        })),
  })
  .times('checks', {
    after: 'each',
    count: 3,
    body: (b) => b.step('check', (i) => ({ check: i, ok: true })),
  })
  .while('delivery', {
    after: 'each',
    maxIterations: 10,
    condition: (last, iteration) => iteration === 0 || (last as { pending: number }).pending > 0,
    body: (b) =>
      b.step('poll', (last) => ({
        pending: Math.max(0, ((last as { pending?: number }).pending ?? 3) - 1),
      })),
  })
  .subWorkflow('summary', {
    after: ['checks', 'delivery'],
    workflow: 'welcome-email',
    input: () => ({ email: 'editor@example.com', name: 'Editor', plan: 'free' }),
  });
