/**
 * The peers are the bench's own dependencies (bench/package.json), not the engine's: the runner
 * stops with the command that installs them rather than a module-not-found from a child process.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SystemTarget } from '../systems/system.js';

const BENCH = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Exit with a message naming `npm --prefix bench install` when a selected peer is missing. */
export function checkPeersInstalled(targets: SystemTarget[]): void {
  const missing = new Map<string, string[]>();
  for (const t of targets) {
    if (t.unavailable) continue;
    for (const pkg of t.packages ?? []) {
      if (!existsSync(join(BENCH, 'node_modules', pkg, 'package.json')))
        missing.set(pkg, [...(missing.get(pkg) ?? []), t.id]);
    }
  }
  if (missing.size === 0) return;
  const list = [...missing].map(([pkg, ids]) => `${pkg} (for ${ids.join(', ')})`).join('; ');
  process.stderr.write(
    `The bench's peers are not installed: ${list}.\n` +
      `They are the bench's own dependencies (bench/package.json), kept out of Weft's. Install them with\n\n` +
      `  npm --prefix bench install\n\n` +
      `and run again, or measure Weft alone: npm run bench -- --systems weft,baseline\n`,
  );
  process.exit(1);
}

/** Versions of the bench's peers as installed (for the meta line). */
export function peerVersions(targets: SystemTarget[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pkg of new Set(targets.flatMap((t) => t.packages ?? []))) {
    try {
      const file = join(BENCH, 'node_modules', pkg, 'package.json');
      out[pkg] = (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    } catch {
      out[pkg] = 'missing';
    }
  }
  return out;
}
