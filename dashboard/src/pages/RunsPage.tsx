/**
 * Runs: filters (workflow, status, trigger kind, time range) kept in the URL, keyset pages with
 * "Load more", and statuses refreshed every few seconds while any shown run is still active.
 * Trigger kind is filtered here on the loaded pages (the list route filters by the others).
 */
import { useInfiniteQuery, useQueries, useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import {
  ACTIVE_RUN_STATUSES,
  api,
  isMissingRoute,
  qs,
  RUN_STATUSES,
  TRIGGER_KINDS,
  type Run,
  type Workflow,
  type WorkflowDetail,
} from '../api';
import { BulkRerunPanel } from './BulkRerunPanel';
import { Duration, Empty, ErrorBox, Loading, RunLink, StatusBadge, Time } from '../components/ui';

const PAGE = 25;

function toIso(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function RunsPage() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const params = useMemo(() => new URLSearchParams(search), [search]);
  const workflowId = params.get('workflowId') ?? '';
  const statuses = params.getAll('status');
  const trigger = params.get('trigger') ?? '';
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';

  const set = (mutate: (p: URLSearchParams) => void) => {
    const next = new URLSearchParams(search);
    mutate(next);
    const s = next.toString();
    navigate(s ? `/runs?${s}` : '/runs', { replace: true });
  };

  const workflows = useQuery({
    queryKey: ['workflows'],
    queryFn: () => api<{ data: Workflow[] }>('/api/v1/workflows'),
  });
  const filter = { workflowId, status: statuses, createdFrom: toIso(from), createdTo: toIso(to) };
  const runs = useInfiniteQuery({
    queryKey: ['runs', filter],
    queryFn: ({ pageParam }) =>
      api<{ data: Run[]; nextCursor: string | null }>(
        `/api/v1/runs${qs({ ...filter, limit: String(PAGE), cursor: pageParam })}`,
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    refetchInterval: (q) =>
      q.state.data?.pages.some((p) => p.data.some((r) => ACTIVE_RUN_STATUSES.has(r.status)))
        ? 2000
        : 10_000,
  });
  const counts = useQuery({
    queryKey: ['run-counts', workflowId, from, to],
    queryFn: () =>
      api<{ counts: Record<string, number> }>(
        `/api/v1/runs/counts${qs({ workflowId, createdFrom: toIso(from), createdTo: toIso(to) })}`,
      ),
    refetchInterval: 5000,
    retry: false,
  });

  const [bulk, setBulk] = useState(false);
  // Version numbers: one read per workflow shown (cached), versionId → vN.
  const shownWorkflows = [
    ...new Set((runs.data?.pages ?? []).flatMap((p) => p.data.map((r) => r.workflowId))),
  ];
  const details = useQueries({
    queries: shownWorkflows.map((id) => ({
      queryKey: ['workflow', id],
      queryFn: () => api<WorkflowDetail>(`/api/v1/workflows/${encodeURIComponent(id)}`),
      staleTime: 30_000,
    })),
  });
  const versionOf = new Map(
    details.flatMap((d) => d.data?.versions.map((v) => [v.id, v.version] as const) ?? []),
  );
  const rows = (runs.data?.pages.flatMap((p) => p.data) ?? []).filter(
    (r) => !trigger || r.trigger.kind === trigger,
  );

  return (
    <div className="page">
      <h1>Runs</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter runs">
        <label>
          Workflow
          <select
            value={workflowId}
            onChange={(e) =>
              set((p) =>
                e.target.value ? p.set('workflowId', e.target.value) : p.delete('workflowId'),
              )
            }
          >
            <option value="">All</option>
            {workflows.data?.data.map((w) => (
              <option key={w.id} value={w.id}>
                {w.id}
              </option>
            ))}
          </select>
        </label>
        <fieldset className="status-filter">
          <legend>Status</legend>
          {RUN_STATUSES.map((s) => (
            <label key={s} className="check">
              <input
                type="checkbox"
                checked={statuses.includes(s)}
                onChange={(e) =>
                  set((p) => {
                    const all = new Set(p.getAll('status'));
                    if (e.target.checked) all.add(s);
                    else all.delete(s);
                    p.delete('status');
                    all.forEach((x) => p.append('status', x));
                  })
                }
              />
              {s}
              {counts.data ? <span className="count">{counts.data.counts[s] ?? 0}</span> : null}
            </label>
          ))}
        </fieldset>
        <label>
          Trigger
          <select
            value={trigger}
            onChange={(e) =>
              set((p) => (e.target.value ? p.set('trigger', e.target.value) : p.delete('trigger')))
            }
          >
            <option value="">Any</option>
            {TRIGGER_KINDS.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label>
          Created from
          <input
            type="datetime-local"
            value={from}
            onChange={(e) =>
              set((p) => (e.target.value ? p.set('from', e.target.value) : p.delete('from')))
            }
          />
        </label>
        <label>
          to
          <input
            type="datetime-local"
            value={to}
            onChange={(e) =>
              set((p) => (e.target.value ? p.set('to', e.target.value) : p.delete('to')))
            }
          />
        </label>
        {search ? (
          <button
            type="button"
            className="ghost"
            onClick={() => navigate('/runs', { replace: true })}
          >
            Clear filters
          </button>
        ) : null}
      </form>
      {workflowId && !bulk ? (
        <div className="row">
          <button type="button" onClick={() => setBulk(true)}>
            Rerun failed runs…
          </button>
          <span className="muted small">
            every failed run of {workflowId}
            {from || to ? ' in this time range' : ''}, each from the step that failed it — with a
            dry run first
          </span>
        </div>
      ) : null}
      {workflowId && bulk ? (
        <BulkRerunPanel
          filter={{ workflowId, createdFrom: toIso(from), createdTo: toIso(to) }}
          onClose={() => setBulk(false)}
        />
      ) : null}
      {counts.error && !isMissingRoute(counts.error) ? (
        <ErrorBox error={counts.error} what="counts" />
      ) : null}
      {runs.isPending ? (
        <Loading what="runs" />
      ) : runs.error ? (
        <ErrorBox error={runs.error} what="runs" />
      ) : rows.length === 0 ? (
        <Empty title={search ? 'No runs match these filters.' : 'No runs yet.'}>
          {search
            ? 'Widen the filters or clear them.'
            : 'Trigger a run from a workflow page, with `weft trigger <workflow>`, or over the API.'}
        </Empty>
      ) : (
        <table className="table runs-table" data-testid="runs-table">
          <thead>
            <tr>
              <th>Status</th>
              <th>Run</th>
              <th>Workflow</th>
              <th>Version</th>
              <th>Trigger</th>
              <th>Created</th>
              <th>Duration</th>
              <th>Lineage</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-run={r.id}>
                <td>
                  <StatusBadge status={r.status} />
                </td>
                <td>
                  <RunLink id={r.id} />
                </td>
                <td>
                  <Link href={`/workflows/${encodeURIComponent(r.workflowId)}`}>
                    {r.workflowId}
                  </Link>
                </td>
                <td>{versionOf.has(r.versionId) ? `v${versionOf.get(r.versionId)}` : ''}</td>
                <td>{r.trigger.kind}</td>
                <td>
                  <Time iso={r.createdAt} />
                </td>
                <td>
                  <Duration from={r.startedAt} to={r.finishedAt} />
                </td>
                <td className="small">
                  {r.rerunOf ? (
                    <>
                      rerun of <RunLink id={r.rerunOf} />
                    </>
                  ) : r.parentRunId ? (
                    <>
                      child of <RunLink id={r.parentRunId} />
                    </>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {runs.hasNextPage ? (
        <button
          type="button"
          onClick={() => void runs.fetchNextPage()}
          disabled={runs.isFetchingNextPage}
        >
          {runs.isFetchingNextPage ? 'Loading…' : 'Load more'}
        </button>
      ) : rows.length > 0 ? (
        <p className="muted">End of the list.</p>
      ) : null}
    </div>
  );
}
