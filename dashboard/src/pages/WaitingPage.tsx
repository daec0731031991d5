/**
 * Waiting: every run that waits (status `waiting`, and running runs with an open wait), each open
 * waitpoint with what it waits for — approvals with their form, sleeps with their end, child runs
 * with a link.
 */
import { useQueries, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api, type Run, type Waitpoint } from '../api';
import { ApprovalForm } from '../components/ApprovalForm';
import { Empty, ErrorBox, Loading, RunLink, StatusBadge, Time } from '../components/ui';

export function WaitingPage() {
  // Approvals completed here stay on the page (with their confirmation) until the next visit.
  const [completed, setCompleted] = useState<Map<string, Waitpoint>>(new Map());
  const runs = useQuery({
    queryKey: ['waiting', 'runs'],
    queryFn: () =>
      api<{ data: Run[] }>('/api/v1/runs?status=waiting&status=running&status=paused&limit=100'),
    refetchInterval: 3000,
  });
  const waits = useQueries({
    queries: (runs.data?.data ?? []).map((r) => ({
      queryKey: ['waitpoints', r.id],
      queryFn: () => api<{ data: Waitpoint[] }>(`/api/v1/runs/${r.id}/waitpoints`),
      refetchInterval: 3000,
    })),
  });
  if (runs.isPending) return <Loading what="waiting runs" />;
  if (runs.error) return <ErrorBox error={runs.error} what="waiting runs" />;
  const open = waits.flatMap((q) => (q.data?.data ?? []).filter((w) => w.status === 'waiting'));
  const approvals = open.filter((w) => w.kind === 'approval' && !completed.has(w.token));
  approvals.push(...completed.values());
  approvals.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const others = open.filter((w) => w.kind !== 'approval');
  const byRun = new Map((runs.data.data ?? []).map((r) => [r.id, r]));
  return (
    <div className="page">
      <h1>Waiting</h1>
      <h2>Approvals ({approvals.length})</h2>
      {approvals.length === 0 ? (
        <Empty title="No approval is waiting for a person.">
          Approvals appear here when a run reaches an <code>.approval()</code> step.
        </Empty>
      ) : (
        <div className="cards">
          {approvals.map((w) => (
            <div key={w.token} className="card" data-testid="approval-card">
              <div className="row wrap">
                <strong>{w.stepKey}</strong>
                <span className="muted small">
                  of {byRun.get(w.runId)?.workflowId} · <RunLink id={w.runId} />
                </span>
              </div>
              <p className="muted small">
                Waiting since <Time iso={w.createdAt} />
                {w.resumeAt ? (
                  <>
                    {' '}
                    · times out <Time iso={w.resumeAt} />
                  </>
                ) : null}
              </p>
              <ApprovalForm
                waitpoint={w}
                onDone={() => setCompleted((m) => new Map(m).set(w.token, w))}
              />
            </div>
          ))}
        </div>
      )}
      <h2>Sleeps and child runs ({others.length})</h2>
      {others.length === 0 ? (
        <Empty title="Nothing is sleeping or waiting for a child run." />
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th>Run</th>
              <th>Step</th>
              <th>Waits for</th>
              <th>Since</th>
            </tr>
          </thead>
          <tbody>
            {others.map((w) => (
              <tr key={w.token}>
                <td>
                  <StatusBadge status={byRun.get(w.runId)?.status ?? 'waiting'} />{' '}
                  <RunLink id={w.runId} />
                </td>
                <td className="mono">{w.stepKey}</td>
                <td>
                  {w.kind === 'sleep' ? (
                    <>
                      the time {w.resumeAt ? new Date(w.resumeAt).toLocaleString() : '—'} (
                      {w.resumeAt ? <Time iso={w.resumeAt} /> : null})
                    </>
                  ) : (
                    <>child run {w.childRunId ? <RunLink id={w.childRunId} /> : '—'} to end</>
                  )}
                </td>
                <td>
                  <Time iso={w.createdAt} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
