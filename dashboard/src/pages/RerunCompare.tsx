/**
 * A rerun next to its source: for each step, whether its output was reused (the same dataclip),
 * recomputed to the same value, or changed — the question after "I fixed the step, did it help?".
 */
import { useQueries, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api, reusedSource, type Dataclip, type Run, type StepRun } from '../api';
import { ErrorBox, Loading, RunLink, Section } from '../components/ui';

const MAX_COMPARED = 40;

export function RerunCompare({ run, steps }: { run: Run; steps: StepRun[] }) {
  const [open, setOpen] = useState(false);
  const source = useQuery({
    queryKey: ['steps', run.rerunOf],
    queryFn: () => api<{ data: StepRun[] }>(`/api/v1/runs/${run.rerunOf}/steps`),
    enabled: open && !!run.rerunOf,
  });
  const bySourceKey = new Map((source.data?.data ?? []).map((s) => [s.stepKey, s]));
  const recomputed = steps
    .filter(
      (s) => !reusedSource(s) && s.outputDataclipId && bySourceKey.get(s.stepKey)?.outputDataclipId,
    )
    .slice(0, MAX_COMPARED);
  const clips = useQueries({
    queries: recomputed
      .flatMap((s) => [s.outputDataclipId!, bySourceKey.get(s.stepKey)!.outputDataclipId!])
      .map((id) => ({
        queryKey: ['dataclip', id],
        queryFn: () => api<Dataclip>(`/api/v1/dataclips/${id}`),
        staleTime: Infinity,
        enabled: open,
      })),
  });
  const body = new Map(
    clips.flatMap((q) => (q.data ? [[q.data.id, JSON.stringify(q.data.body)] as const] : [])),
  );

  const verdict = (s: StepRun): string => {
    if (reusedSource(s)) return 'reused (same output)';
    const before = bySourceKey.get(s.stepKey);
    if (!before) return 'not in the source run';
    if (s.status !== 'succeeded') return s.status;
    if (!s.outputDataclipId || !before.outputDataclipId) return 'no output to compare';
    const a = body.get(s.outputDataclipId);
    const b = body.get(before.outputDataclipId);
    if (a === undefined || b === undefined) return recomputed.includes(s) ? '…' : 'not compared';
    return a === b ? 'recomputed, same output' : 'changed output';
  };

  return (
    <Section
      title="Compared with the source run"
      right={
        <button type="button" onClick={() => setOpen(!open)} aria-expanded={open}>
          {open ? 'Hide' : 'Compare outputs'}
        </button>
      }
    >
      <p className="muted small">
        Rerun of <RunLink id={run.rerunOf!} /> from <code>{run.rerunFromStep}</code>.
      </p>
      {!open ? null : source.isPending ? (
        <Loading what="the source run's steps" />
      ) : source.error ? (
        <ErrorBox error={source.error} what="the source run" />
      ) : (
        <table className="table compact" data-testid="rerun-compare">
          <thead>
            <tr>
              <th>Step</th>
              <th>Output compared with the source</th>
            </tr>
          </thead>
          <tbody>
            {steps.map((s) => {
              const v = verdict(s);
              return (
                <tr key={s.id}>
                  <td className="mono">{s.stepKey}</td>
                  <td
                    className={
                      v === 'changed output'
                        ? 'changed-cell'
                        : v.startsWith('reused')
                          ? 'muted'
                          : ''
                    }
                  >
                    {v}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </Section>
  );
}
