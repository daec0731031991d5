/**
 * People in the loop. A router sends short documents straight to publishing; longer ones fan out
 * to every reviewer in parallel, each review an approval that parks until someone completes its
 * token (no worker is held while waiting). A review not answered within a day takes the
 * `timeout` edge and counts as "no answer".
 *
 *   weft trigger document-review --input '{"title":"Q3 report","words":4200,"reviewers":["ada","grace"]}'
 *   weft runs show <runId>            # the waiting approvals and their tokens
 *   weft waitpoints complete <token> --payload '{"approved":true,"note":"ship it"}'
 */
import { z } from 'zod';
import { defineWorkflow } from '../src/index.js';

export interface Document {
  title: string;
  words: number;
  reviewers: string[];
}

const Review = z.object({ approved: z.boolean(), note: z.string().max(500).optional() }).strict();

export const documentReview = defineWorkflow<Document>('document-review', {
  description: 'Route by length; long documents need every reviewer to approve, in parallel.',
})
  .router('length', {}, (doc) => (doc.words > 1000 ? 'review' : 'publish'))
  .parallel('reviews', {
    after: { step: 'length', branch: 'review' },
    items: (doc) => doc.reviewers,
    concurrency: 10,
    body: (review) =>
      review
        .approval('decision', { schema: Review, timeout: '1d' })
        .step('approved', { after: 'decision' }, (d) => (d as z.infer<typeof Review>).approved)
        .step('noAnswer', { after: { step: 'decision', on: 'timeout' } }, () => false),
  })
  .step('verdict', { after: 'reviews' }, (answers) => ({
    approved: answers.every((a) => a === true),
    answers,
  }))
  .step('publish', { after: { step: 'length', branch: 'publish' } }, (doc) => ({
    published: doc.title,
  }));
