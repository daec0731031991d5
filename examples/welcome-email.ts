/**
 * A chain with a typed input: each step receives its parent's output, and TypeScript knows its
 * shape. The last step calls a mailer with `ctx.idempotencyKey` (stable across retries of the
 * step), so a retry after a crash cannot send the email twice.
 *
 *   weft trigger welcome-email --input '{"email":" Ada@Example.com ","name":"Ada Lovelace"}' --wait
 */
import { defineWorkflow } from '../src/index.js';
import { mailer } from './_services.js';

export interface Signup {
  email: string;
  name: string;
  plan?: 'free' | 'pro';
}

export const welcomeEmail = defineWorkflow<Signup>('welcome-email', {
  description: 'Normalize a signup, render the welcome email, send it exactly once.',
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
