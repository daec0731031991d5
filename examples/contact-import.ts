/**
 * Run state. Steps read and change `ctx.state`, a per-run object; a step's changes commit with
 * its output, and are thrown away if the attempt fails (a retry sees the state as it was). Here
 * the steps tally what they skipped and imported, and the last step reports the tally.
 *
 *   weft trigger contact-import --input '{"source":"crm.csv","contacts":[{"email":"a@x.io"},{"email":"A@x.io"},{"email":"nope"}]}' --wait
 */
import { defineWorkflow } from '../src/index.js';

export interface ContactImport {
  source: string;
  contacts: Array<{ email: string; name?: string }>;
}

type ImportState = {
  skipped?: Array<{ email: string; reason: string }>;
  imported?: number;
};

export const contactImport = defineWorkflow<ContactImport, ImportState>('contact-import', {
  description: 'Dedupe and validate contacts, save them, and report what happened in run state.',
})
  .step('dedupe', ({ contacts }, ctx) => {
    const seen = new Set<string>();
    const unique = [];
    for (const contact of contacts) {
      const email = contact.email.trim().toLowerCase();
      if (seen.has(email)) {
        ctx.state.skipped = [
          ...(ctx.state.skipped ?? []),
          { email: contact.email, reason: 'duplicate' },
        ];
      } else {
        seen.add(email);
        unique.push({ ...contact, email });
      }
    }
    return unique;
  })
  .step('validate', { after: 'dedupe' }, (contacts, ctx) =>
    contacts.filter((contact) => {
      const ok = /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(contact.email);
      if (!ok)
        ctx.state.skipped = [
          ...(ctx.state.skipped ?? []),
          { email: contact.email, reason: 'invalid address' },
        ];
      return ok;
    }),
  )
  .step('save', { after: 'validate' }, (contacts, ctx) => {
    ctx.state.imported = (ctx.state.imported ?? 0) + contacts.length;
    return contacts.map((c) => c.email);
  })
  .step('report', { after: 'save' }, (saved, ctx) => ({
    imported: ctx.state.imported ?? 0,
    skipped: ctx.state.skipped ?? [],
    emails: saved,
  }));
