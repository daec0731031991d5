/**
 * Summarize a V8 CPU profile written by `npm run bench -- --cpu-prof` (bench/.profiles/): self
 * time by package / source area and the hottest functions, so "where does a step's CPU go" is
 * answered from the data instead of a flame-graph screenshot.
 *
 *   node --import tsx bench/profile-summary.ts bench/.profiles/weft-pg-….cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' } },
});
const top = Number(values.top);

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) =>
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)),
  );
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const key = `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  process.stdout.write(
    `\n${file}\n  sampled ${(total / 1000).toFixed(0)} ms over ${((profile.endTime - profile.startTime) / 1000).toFixed(0)} ms\n\n  self time by area\n`,
  );
  for (const [area, us] of [...areas].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`  ${pct(us)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${area}\n`);
  process.stdout.write(`\n  hottest functions (self time)\n`);
  for (const [fn, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`  ${pct(us)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${fn}\n`);
}

/** `node_modules/<pkg>`, `src/<layer>`, `bench`, `node:<module>`, or V8's own buckets. */
function areaOf(url: string, functionName: string): string {
  if (!url) return `(${functionName || 'native'})`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const src = /\/(src\/[^/]+)\//.exec(url);
  if (src) return src[1]!;
  if (url.includes('/bench/')) return 'bench';
  if (url.startsWith('node:')) return url.split('/')[0]!;
  return url;
}

function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*?\/(node_modules|src|bench)\//, '$1/');
}
