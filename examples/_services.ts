/**
 * Stand-ins for the external services the examples call (a mailer, a payment gateway, a
 * warehouse), so the examples run with nothing else installed. Each one honours an idempotency
 * key the way real providers do: the same key returns the first result instead of acting twice,
 * which is what makes a retried step safe. (Files starting with `_` are not loaded as workflows.)
 */
import { randomUUID } from 'node:crypto';

function idempotent<T>(): (key: string, act: () => T) => T {
  const done = new Map<string, T>();
  return (key, act) => {
    const previous = done.get(key);
    if (previous !== undefined) return previous;
    const result = act();
    done.set(key, result);
    return result;
  };
}

const sendOnce = idempotent<{ messageId: string }>();
const chargeOnce = idempotent<{ chargeId: string; amountCents: number }>();

export const mailer = {
  async send(message: { to: string; subject: string }, options: { idempotencyKey: string }) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    return sendOnce(options.idempotencyKey, () => ({
      messageId: `msg_${randomUUID().slice(0, 8)}`,
    }));
  },
};

export class CardDeclinedError extends Error {
  override readonly name = 'CardDeclinedError';
}

export const payments = {
  /**
   * Cards ending in 0002 are declined (a permanent answer). Every charge's first attempt times
   * out (a transient failure), so the examples show a retry.
   */
  async charge(
    card: string,
    amountCents: number,
    options: { idempotencyKey: string; attempt: number },
  ) {
    await new Promise((resolve) => setTimeout(resolve, 30));
    if (card.endsWith('0002'))
      throw new CardDeclinedError(
        `card ending in ${card.slice(-4)} was declined: insufficient funds`,
      );
    if (options.attempt === 1) throw new Error('payment gateway timed out after 30 s (simulated)');
    return chargeOnce(options.idempotencyKey, () => ({
      chargeId: `ch_${randomUUID().slice(0, 8)}`,
      amountCents,
    }));
  },
};

export const warehouse = {
  async reserve(items: ReadonlyArray<{ sku: string; qty: number }>) {
    await new Promise((resolve) => setTimeout(resolve, 40));
    return {
      reservationId: `res_${randomUUID().slice(0, 8)}`,
      units: items.reduce((n, i) => n + i.qty, 0),
    };
  },
  async bookCourier(address: string) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    return {
      carrier: 'Parcelly',
      trackingNumber: `PX${Math.floor(Math.random() * 1e9)}`,
      deliverTo: address,
    };
  },
};
