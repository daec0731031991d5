/**
 * Metrics (at /analytics: /metrics is the Prometheus endpoint): the /api/v1/metrics endpoints over a chosen window — failure rate, run duration and
 * queue wait per workflow, step durations per step, and runs per status per bucket. Answered by
 * ClickHouse when the analytics mirror is configured, else by PostgreSQL (the page says which).
 */
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../api';
import { Empty, ErrorBox, Loading, formatDuration } from '../components/ui';

interface Percentiles {
  count: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}
type Source = 'clickhouse' | 'postgres';

const WINDOWS = {
  '1h': 3_600_000,
  '24h': 86_400_000,
  '7d': 7 * 86_400_000,
  '30d': 30 * 86_400_000,
};
type Window = keyof typeof WINDOWS;

const ms = (v: number | null) => (v === null ? '–' : formatDuration(v));

function PercentileRows({
  rows,
  label,
}: {
  rows: Array<Percentiles & { key: string }>;
  label: string;
}) {
  if (rows.length === 0) return <Empty title={`No ${label} in this window.`} />;
  return (
    <table className="table" data-testid={`metrics-${label.replace(/\s+/g, '-')}`}>
      <thead>
        <tr>
          <th>{label}</th>
          <th>count</th>
          <th>p50</th>
          <th>p95</th>
          <th>p99</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.key}>
            <td>{r.key}</td>
            <td>{r.count}</td>
            <td>{ms(r.p50Ms)}</td>
            <td>{ms(r.p95Ms)}</td>
            <td>{ms(r.p99Ms)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function MetricsPage() {
  const [window, setWindow] = useState<Window>('24h');
  const from = new Date(Math.floor((Date.now() - WINDOWS[window]) / 60_000) * 60_000).toISOString();
  const q = (path: string) =>
    `/api/v1/metrics/${path}${path.includes('?') ? '&' : '?'}from=${encodeURIComponent(from)}`;
  const options = { refetchInterval: 10_000 };
  const rate = useQuery({
    queryKey: ['metrics', 'failure-rate', from],
    queryFn: () =>
      api<{
        source: Source;
        data: Array<{ workflowId: string; finished: number; failed: number; failureRate: number }>;
      }>(q('failure-rate')),
    ...options,
  });
  const durations = useQuery({
    queryKey: ['metrics', 'durations', from],
    queryFn: () => api<{ data: Array<Percentiles & { workflowId: string }> }>(q('durations')),
    ...options,
  });
  const wait = useQuery({
    queryKey: ['metrics', 'queue-wait', from],
    queryFn: () => api<{ data: Array<Percentiles & { workflowId: string }> }>(q('queue-wait')),
    ...options,
  });
  const steps = useQuery({
    queryKey: ['metrics', 'step-durations', from],
    queryFn: () =>
      api<{ data: Array<Percentiles & { workflowId: string; stepId: string }> }>(
        q('step-durations'),
      ),
    ...options,
  });
  if (rate.isPending) return <Loading what="metrics" />;
  if (rate.error) return <ErrorBox error={rate.error} what="metrics" />;
  return (
    <div className="page">
      <div className="row wrap">
        <h1>Metrics</h1>
        <span className="spacer" />
        {(Object.keys(WINDOWS) as Window[]).map((w) => (
          <button
            key={w}
            type="button"
            className={w === window ? 'primary' : 'ghost'}
            aria-pressed={w === window}
            onClick={() => setWindow(w)}
          >
            {w}
          </button>
        ))}
      </div>
      <p className="muted small" data-testid="metrics-source">
        Runs created in the last {window}, answered by{' '}
        {rate.data.source === 'clickhouse'
          ? 'ClickHouse (the analytics mirror: as fresh as its replication lag)'
          : 'PostgreSQL'}
        .
      </p>
      <h2>Failure rate</h2>
      {rate.data.data.length === 0 ? (
        <Empty title="No runs in this window." />
      ) : (
        <table className="table" data-testid="metrics-failure-rate">
          <thead>
            <tr>
              <th>workflow</th>
              <th>ended</th>
              <th>failed</th>
              <th>failure rate</th>
            </tr>
          </thead>
          <tbody>
            {rate.data.data.map((r) => (
              <tr key={r.workflowId}>
                <td>{r.workflowId}</td>
                <td>{r.finished}</td>
                <td>{r.failed}</td>
                <td>{(r.failureRate * 100).toFixed(1)} %</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Run duration</h2>
      {durations.data ? (
        <PercentileRows
          label="workflow"
          rows={durations.data.data.map((r) => ({ ...r, key: r.workflowId }))}
        />
      ) : (
        <Loading what="durations" />
      )}
      <h2>Queue wait (created → first claim)</h2>
      {wait.data ? (
        <PercentileRows
          label="workflow queue"
          rows={wait.data.data.map((r) => ({ ...r, key: r.workflowId }))}
        />
      ) : (
        <Loading what="queue wait" />
      )}
      <h2>Step duration</h2>
      {steps.data ? (
        <PercentileRows
          label="step"
          rows={steps.data.data.map((r) => ({ ...r, key: `${r.workflowId} · ${r.stepId}` }))}
        />
      ) : (
        <Loading what="step durations" />
      )}
    </div>
  );
}
