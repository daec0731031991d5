/**
 * Retries, a `failure` edge and TerminalError. `charge` is retried with backoff when the gateway
 * times out (its first attempt always does here). A declined card is a TerminalError: retrying
 * cannot fix it, so there is no second attempt and the step follows its `failure` edge to
 * `recordDecline` instead of failing the run; `sendReceipt` (its success edge) is pruned.
 *
 *   weft trigger card-payment --input '{"customerId":"c-7","amountCents":4900,"card":"4242424242424242"}' --wait
 *   weft trigger card-payment --input '{"customerId":"c-8","amountCents":4900,"card":"4000000000000002"}' --wait
 */
import { defineWorkflow, TerminalError } from '../src/index.js';
import { CardDeclinedError, payments } from './_services.js';

export interface Payment {
  customerId: string;
  amountCents: number;
  card: string;
}

export const cardPayment = defineWorkflow<Payment>('card-payment', {
  description: 'Charge a card with retries; a decline is terminal and handled by a failure edge.',
})
  .step(
    'charge',
    { retry: { maxAttempts: 4, minDelay: '250ms', maxDelay: '2s', factor: 2 }, timeout: '10s' },
    async ({ customerId, amountCents, card }, ctx) => {
      try {
        const charge = await payments.charge(card, amountCents, {
          idempotencyKey: ctx.idempotencyKey,
          attempt: ctx.attempt,
        });
        return { customerId, ...charge };
      } catch (error) {
        if (error instanceof CardDeclinedError)
          throw new TerminalError(error.message, { code: 'card_declined' });
        throw error; // anything else may be transient: retried with backoff
      }
    },
  )
  .step('sendReceipt', { after: 'charge' }, (charge) => ({
    status: 'paid',
    chargeId: charge.chargeId,
    amountCents: charge.amountCents,
  }))
  .step('recordDecline', { after: { step: 'charge', on: 'failure' } }, ({ error }) => ({
    status: 'declined',
    reason: error.message,
    code: error.code ?? null,
  }));
