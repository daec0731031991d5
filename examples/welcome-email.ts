/**
 * A chain with a checked input: the zod schema gives the input its type and is checked at every
 * trigger, so `{"email": 42}` is a 422 naming `input.email` and starts no run. Each step receives
 * its parent's output, and TypeScript knows its shape. The last step calls a mailer with `ctx.idempotencyKey` (stable across retries of the
 * step), so a retry after a crash cannot send the email twice.
 *
 *   weft trigger welcome-email --input '{"email":" Ada@Example.com ","name":"Ada Lovelace"}' --wait
 */
import { z } from 'zod';
import { defineWorkflow } from '../src/index.js';
import { mailer } from './_services.js';

/** Checked before any run starts; normalizing (trim, lower case) is the first step's job. */
export const Signup = z.object({
  email: z.string().includes('@'),
  name: z.string().min(1),
  plan: z.enum(['free', 'pro']).optional(),
});
export type Signup = z.infer<typeof Signup>;

export const welcomeEmail = defineWorkflow('welcome-email', {
  description: 'Normalize a signup, render the welcome email, send it exactly once.',
  input: Signup,
})
  .step('normalize', ({ email, name, plan }) => ({
    email: email.trim().toLowerCase(),
    firstName: name.trim().split(/\s+/)[0] ?? name,
    plan: plan ?? 'free',
  }))
  .step('render', { after: 'normalize' }, (user) => ({
    to: user.email,
    subject: `Welcome to Weft, ${user.firstName}!`,
    body: user.plan === 'pro' ? 'Your Pro workspace is ready.' : 'Your workspace is ready.',
  }))
  .step(
    'send',
    { after: 'render', retry: { maxAttempts: 5, minDelay: '1s' } },
    async (message, ctx) => {
      const { messageId } = await mailer.send(message, { idempotencyKey: ctx.idempotencyKey });
      ctx.log.info('welcome email sent', { to: message.to, messageId });
      return { to: message.to, messageId };
    },
  );
