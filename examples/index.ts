/**
 * The bundled examples: what `weft dev` runs when it is given no workflows of its own, and what
 * the tests reuse. Each file shows one feature; `sampleInputs` feeds the example request that
 * `weft dev` prints.
 *
 * They import `../src/index.js`, the package's public entry as laid out in the repository, so
 * they type-check and run from a clone without a build. In your own project import from 'weft'
 * instead; when the `weft` CLI loads these files (from the repository or the installed package)
 * it resolves that import to its own copy of Weft.
 */
import { cardPayment } from './card-payment.js';
import { contactImport } from './contact-import.js';
import { documentReview } from './document-review.js';
import { newsletter } from './newsletter.js';
import { nightlyImport } from './nightly-import.js';
import { orderFulfilment } from './order-fulfilment.js';
import { welcomeEmail } from './welcome-email.js';

export {
  cardPayment,
  contactImport,
  documentReview,
  newsletter,
  nightlyImport,
  orderFulfilment,
  welcomeEmail,
};

export const workflows = [
  welcomeEmail,
  orderFulfilment,
  cardPayment,
  contactImport,
  documentReview,
  newsletter,
  nightlyImport,
];

export const sampleInputs = {
  'welcome-email': { email: ' Ada@Example.com ', name: 'Ada Lovelace', plan: 'pro' },
  'order-fulfilment': {
    orderId: 'o-1001',
    items: [{ sku: 'mug', qty: 2 }],
    address: '1 Loom Street',
  },
  'card-payment': { customerId: 'c-7', amountCents: 4900, card: '4242424242424242' },
  'document-review': { title: 'Q3 report', words: 4200, reviewers: ['ada', 'grace'] },
  newsletter: {
    issue: '#42',
    subscribers: [{ email: 'ada@example.com' }, { email: 'bob@example.com', unsubscribed: true }],
  },
  'nightly-import': { rows: ['ada,36', 'grace,85', 'oops'] },
  'contact-import': {
    source: 'crm.csv',
    contacts: [
      { email: 'ada@example.com' },
      { email: 'ADA@example.com' },
      { email: 'not-an-email' },
    ],
  },
};
