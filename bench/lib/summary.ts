/** The readable summary the bench writes to stderr (Markdown tables), from its JSON lines. */
import { sig } from './stats.js';
import type { Sample } from './protocol.js';
import type { GoalLine, RatioLine, ResultLine } from './results.js';

/** What the progress line of a repetition adds after its figure: p99, and diagnose's figures. */
export function repNote(sample: Sample): string {
  const d = sample.diagnose;
  const perStep = (n: number | undefined) => fmt(n === undefined ? undefined : n / sample.steps, 4);
  const rows = d
    ? Object.values(d.tables).reduce((n, t) => n + t.inserts + t.updates + t.deletes, 0)
    : undefined;
  const notes = [
    sample.latency ? `p99 ${fmt(sample.latency.p99)} ms` : '',
    sample.otherCpuMs !== undefined
      ? `rest of the machine ${perStep(sample.otherCpuMs)} ms CPU/step`
      : '',
    d?.bareCommitMs ? `bare commit ${fmt(d.bareCommitMs)} ms` : '',
    d
      ? `${perStep(rows)} row writes, ${perStep(d.walBytes)} B WAL (own ${perStep(d.ownWalBytes)}, of it full pages ${perStep(d.ownWalFpiBytes)}) per step`
      : '',
  ].filter(Boolean);
  return notes.length > 0 ? ` (${notes.join('; ')})` : '';
}

export const fmt = (x: number | undefined, d = 3): string =>
  x === undefined || Number.isNaN(x) ? '–' : String(sig(x, d));

export function summary(lines: ResultLine[], ratios: RatioLine[], goals: GoalLine[]): string {
  const rows = [
    '| bench | system | backend | variant | median | min | max | unit | client CPU ms/step | server CPU ms/step | round trips/step | txns/step | write txns/step | load (range) |',
    '| --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const l of lines) {
    if (l.status !== 'ok') {
      rows.push(`| ${l.bench} | ${l.system} | ${l.backend} | – | ${l.status} | | | | | | | | | |`);
      continue;
    }
    const p = l.perStep!;
    const med = l.headline ? `**${fmt(l.median, 4)}**` : fmt(l.median, 4);
    rows.push(
      `| ${l.bench} | ${l.system} | ${l.backend} | ${l.variant}${l.headline ? ' (best)' : ''} | ${med} | ${fmt(l.min)} | ${fmt(l.max)} | ${l.unit} | ${fmt(p.clientCpuMs)} | ${fmt(p.serverCpuMs)} | ${fmt(p.roundTrips)} | ${fmt(p.transactions)} | ${fmt(p.writeTransactions)} | ${fmt(l.load1, 2)} (${fmt(l.load1Range?.[0], 2)}–${fmt(l.load1Range?.[1], 2)}) |`,
    );
  }
  const rat = [
    '| bench | weft on | vs | medians | ratio | ratio of best reps | meaning |',
    '| --- | --- | --- | --- | ---: | ---: | --- |',
  ];
  for (const r of ratios)
    rat.push(
      `| ${r.bench} | ${r.backend} (${r.variant}) | ${r.vs} on ${r.vsBackend} (${r.vsVariant}) | ${fmt(r.medians[0], 4)} vs ${fmt(r.medians[1], 4)} ${r.unit[1]} | ${fmt(r.ratio)}× | ${fmt(r.ratioOfBest)}× | ${r.meaning} |`,
    );
  const extra: string[] = [];
  const lat = lines.filter((l) => l.latency);
  if (lat.length > 0) {
    extra.push(
      '| latency: trigger → step started | variant | triggers | p50 ms | p90 ms | p99 ms | max ms |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const l of lat)
      extra.push(
        `| ${l.system} on ${l.backend} | ${l.variant} | ${l.latency!.triggers} | ${fmt(l.latency!.p50)} | ${fmt(l.latency!.p90)} | ${fmt(l.latency!.p99)} | ${fmt(l.latency!.max)} |`,
      );
    extra.push('');
  }
  const diag = lines.filter((l) => l.diagnose);
  if (diag.length > 0) {
    extra.push(
      '| diagnose | variant | median | row writes/step | WAL B/step (server) | WAL B/step (own db) | of it full pages | bare commit ms | step in bare commits |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const l of diag) {
      const d = l.diagnose!;
      extra.push(
        `| ${l.bench} ${l.system} | ${l.variant} | ${fmt(l.median, 4)} ${l.unit} | ${fmt(d.rowWritesPerStep)} | ${fmt(d.walBytesPerStep, 4)} | ${fmt(d.ownWalBytesPerStep, 4)} | ${fmt(d.ownWalFpiBytesPerStep, 4)} | ${fmt(d.bareCommitMs)} | ${fmt(d.stepsInBareCommits)} |`,
      );
    }
    extra.push('');
  }
  if (goals.length > 0) {
    extra.push('| goal (issue 8) | value | limit | met |', '| --- | ---: | ---: | --- |');
    for (const g of goals)
      extra.push(
        `| ${g.goal} | ${fmt(g.value)} ${g.unit} | ${g.limit} | ${g.met ? 'yes' : 'NO'} |`,
      );
  }
  return `${rows.join('\n')}\n\n${rat.join('\n')}\n\n${extra.join('\n')}\n`;
}

export function describeDiagnostics(target: string, d: Record<string, unknown>): string {
  const fns = (d.functions ?? []) as Array<{
    name: string;
    callsPerStep: number;
    selfMsPerStep: number;
    totalMsPerStep: number;
  }>;
  const tables = (d.tables ?? []) as Array<{
    name: string;
    insertsPerStep: number;
    updatesPerStep: number;
    hotUpdatesPerStep: number;
    deletesPerStep: number;
  }>;
  const out = [
    `${target}: server time per step by SQL function over ${String(d.steps)} steps (self ms / total ms / calls)`,
  ];
  for (const f of fns)
    out.push(`  ${f.name}: ${f.selfMsPerStep} / ${f.totalMsPerStep} / ${f.callsPerStep}`);
  out.push(`${target}: rows written per step (insert / update (HOT) / delete)`);
  for (const t of tables)
    out.push(
      `  ${t.name}: ${t.insertsPerStep} / ${t.updatesPerStep} (${t.hotUpdatesPerStep}) / ${t.deletesPerStep}`,
    );
  const stmts = (d.statements ?? []) as Array<{
    statement: string;
    callsPerStep: number;
    msPerStep: number;
    msPerCall: number;
  }>;
  if (stmts.length > 0)
    out.push(
      `${target}: statement durations per step, nested included (ms/step | calls/step | ms/call)`,
    );
  for (const st of stmts.slice(0, 25))
    out.push(`  ${st.msPerStep} | ${st.callsPerStep} | ${st.msPerCall} | ${st.statement}`);
  return out.join('\n');
}
