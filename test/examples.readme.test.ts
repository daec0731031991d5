/**
 * examples/README.md lists every example workflow (it listed 4 of 7): a workflow added to
 * examples/index.ts without a row in the table fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { workflows } from '../examples/index.js';

describe('examples/README.md', () => {
  it('has a row for every workflow examples/index.ts exports', () => {
    const readme = readFileSync(new URL('../examples/README.md', import.meta.url), 'utf8');
    const rows = [...readme.matchAll(/^\| `([\w-]+)\.ts` \| `([\w-]+)` \|/gm)].map((m) => m[2]);
    expect(rows.sort()).toEqual(workflows.map((w) => w.id).sort());
  });
});
