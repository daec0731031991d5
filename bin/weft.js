#!/usr/bin/env node
// The `weft` command: runs the compiled CLI in dist/. A published package ships dist/; a clone of
// the repository builds it on `npm install` (the `prepare` script) or with `npm run build`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error(
    'weft: the compiled CLI is missing (dist/cli/main.js). In a clone of the repository, run `npm install` (it builds) or `npm run build`.',
  );
  process.exit(1);
}
const { runCli } = await import(entry.href);
await runCli(process.argv);
