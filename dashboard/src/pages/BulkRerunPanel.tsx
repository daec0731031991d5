/**
 * Bulk recovery after an outage: every failed run of a workflow in a time range, each rerun from
 * the step that failed it. A dry-run summary first (how many runs, which steps rerun, what is
 * reused, which runs cannot be rerun and why), then a tracked action whose progress shows here.
 */
import { useMutation, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api, isMissingRoute, type BulkRerun, type BulkRerunSummary } from '../api';
import { ErrorBox, Loading, RunLink } from '../components/ui';

export interface BulkFilter {
  workflowId: string;
  createdFrom?: string | undefined;
  createdTo?: string | undefined;
}

function request(filter: BulkFilter, dryRun: boolean, version: 'original' | 'current') {
  const f: Record<string, unknown> = { workflowId: filter.workflowId, status: ['failed'] };
  if (filter.createdFrom) f.createdFrom = filter.createdFrom;
  if (filter.createdTo) f.createdTo = filter.createdTo;
  return { filter: f, version, dryRun };
}

export function BulkRerunPanel({ filter, onClose }: { filter: BulkFilter; onClose: () => void }) {
  const [version, setVersion] = useState<'original' | 'current'>('original');
  const [bulkId, setBulkId] = useState<string | null>(null);
  const summary = useQuery({
    queryKey: ['bulk-summary', filter, version],
    queryFn: async () =>
      (
        await api<{ summary: BulkRerunSummary }>('/api/v1/bulk-reruns', {
          method: 'POST',
          body: request(filter, true, version),
        })
      ).summary,
    retry: false,
    enabled: bulkId === null,
  });
  const start = useMutation({
    mutationFn: () =>
      api<BulkRerun>('/api/v1/bulk-reruns', {
        method: 'POST',
        body: request(filter, false, version),
      }),
    onSuccess: (b) => setBulkId(b.id),
  });
  const progress = useQuery({
    queryKey: ['bulk', bulkId],
    queryFn: () => api<BulkRerun>(`/api/v1/bulk-reruns/${bulkId}`),
    enabled: bulkId !== null,
    refetchInterval: (q) => (q.state.data?.status === 'running' || !q.state.data ? 1000 : false),
  });

  return (
    <section className="section" aria-label="Rerun failed runs" data-testid="bulk-rerun">
      <div className="section-head">
        <h2>Rerun the failed runs of {filter.workflowId}</h2>
        <button type="button" className="ghost" onClick={onClose}>
          Close
        </button>
      </div>
      {bulkId ? (
        progress.data ? (
          <div className="stack">
            <div className="row">
              <progress
                max={progress.data.total}
                value={progress.data.done + progress.data.failed}
              />
              <span>
                {progress.data.done}/{progress.data.total} rerun
                {progress.data.failed ? `, ${progress.data.failed} could not be rerun` : ''} —{' '}
                {progress.data.status}
              </span>
            </div>
            <ul className="plain small">
              {progress.data.items.slice(0, 50).map((i) => (
                <li key={i.sourceRunId}>
                  <RunLink id={i.sourceRunId} /> →{' '}
                  {i.rerunId ? (
                    <RunLink id={i.rerunId} />
                  ) : i.error ? (
                    <span className="field-error">{i.error.message}</span>
                  ) : (
                    'pending'
                  )}
                  {i.fromStep ? <span className="muted"> from {i.fromStep}</span> : null}
                </li>
              ))}
            </ul>
          </div>
        ) : progress.error ? (
          <ErrorBox error={progress.error} what="the bulk rerun" />
        ) : (
          <Loading what="progress" />
        )
      ) : summary.isPending ? (
        <Loading what="the dry-run summary" />
      ) : summary.error ? (
        isMissingRoute(summary.error) ? (
          <p className="muted">
            This server has no bulk rerun route (POST /api/v1/bulk-reruns); rerun runs one by one
            from their pages.
          </p>
        ) : (
          <ErrorBox error={summary.error} what="the summary" />
        )
      ) : (
        <div className="stack">
          <fieldset className="row">
            <legend>Version</legend>
            {(['original', 'current'] as const).map((v) => (
              <label key={v} className="check">
                <input
                  type="radio"
                  name="bulk-version"
                  checked={version === v}
                  onChange={() => setVersion(v)}
                />
                {v === 'original' ? 'each run’s own version' : 'the current version (after a fix)'}
              </label>
            ))}
          </fieldset>
          <p>
            <strong>{summary.data.runs}</strong> failed runs; planned {summary.data.planned}. From:{' '}
            {summary.data.fromSteps.map((f) => `${f.fromStep} (${f.runs})`).join(', ') || '—'}
          </p>
          <table className="table compact">
            <thead>
              <tr>
                <th>Step</th>
                <th>Reruns in</th>
                <th>Reused in</th>
                <th>Skipped in</th>
              </tr>
            </thead>
            <tbody>
              {summary.data.steps.map((s) => (
                <tr key={s.stepId}>
                  <td className="mono">{s.stepId}</td>
                  <td>{s.rerun}</td>
                  <td>{s.reuse}</td>
                  <td>{s.skip}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {summary.data.problems.length ? (
            <div className="error-box">
              <strong>Cannot be rerun:</strong>
              {summary.data.problems.map((p) => (
                <div key={p.runId}>
                  <RunLink id={p.runId} />: {p.message}
                </div>
              ))}
            </div>
          ) : null}
          {start.error ? <ErrorBox error={start.error} what="the bulk rerun" /> : null}
          <button
            type="button"
            className="primary"
            onClick={() => start.mutate()}
            disabled={start.isPending || summary.data.runs === 0}
          >
            Rerun {summary.data.runs} runs
          </button>
        </div>
      )}
    </section>
  );
}
