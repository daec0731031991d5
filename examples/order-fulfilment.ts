/**
 * A join of three parents. After `validate`, three independent steps run concurrently; `confirm`
 * runs once, when all three have finished, and receives their outputs by step id. An order with
 * no items fails `validate` with a TerminalError: bad data is not retried.
 *
 *   weft trigger order-fulfilment --input '{"orderId":"o-1001","items":[{"sku":"mug","qty":2}],"address":"1 Loom St"}' --wait
 */
import { defineWorkflow, TerminalError } from '../src/index.js';
import { payments, warehouse } from './_services.js';

export interface Order {
  orderId: string;
  items: Array<{ sku: string; qty: number; priceCents?: number }>;
  address: string;
  card?: string;
}

export const orderFulfilment = defineWorkflow<Order>('order-fulfilment', {
  description: 'Reserve stock, charge the card and book a courier in parallel, then confirm.',
})
  .step('validate', (order) => {
    if (order.items.length === 0) throw new TerminalError(`order ${order.orderId} has no items`);
    const totalCents = order.items.reduce((sum, i) => sum + i.qty * (i.priceCents ?? 1200), 0);
    return { ...order, totalCents };
  })
  .step('reserveStock', { after: 'validate' }, (order) => warehouse.reserve(order.items))
  .step(
    'chargeCard',
    { after: 'validate', retry: { maxAttempts: 4, minDelay: '200ms' } },
    (order, ctx) =>
      payments.charge(order.card ?? '4242424242424242', order.totalCents, {
        idempotencyKey: ctx.idempotencyKey,
        attempt: ctx.attempt,
      }),
  )
  .step('bookCourier', { after: 'validate' }, (order) => warehouse.bookCourier(order.address))
  .step(
    'confirm',
    { after: ['reserveStock', 'chargeCard', 'bookCourier'] },
    ({ reserveStock, chargeCard, bookCourier }) => ({
      status: 'confirmed',
      reservationId: reserveStock.reservationId,
      chargeId: chargeCard.chargeId,
      paidCents: chargeCard.amountCents,
      trackingNumber: bookCourier.trackingNumber,
    }),
  );
