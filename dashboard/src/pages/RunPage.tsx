/**
 * One run: its graph coloured by step run status and kept live over the SSE stream, a side panel
 * for the selected step (or the rerun plan), the timeline with time travel, the run's input,
 * final state and run state, lineage, and cancel / resume.
 */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Link } from 'wouter';
import {
  ACTIVE_RUN_STATUSES,
  api,
  isMissingRoute,
  type RunDetail,
  type StepRun,
  type Waitpoint,
  type WorkflowDetail,
  type Run,
} from '../api';
import { DataclipView, JsonValue } from '../components/JsonView';
import {
  Duration,
  Empty,
  ErrorBox,
  Loading,
  RunLink,
  Section,
  StatusBadge,
  Time,
} from '../components/ui';
import { FlowGraph } from '../graph/FlowGraph';
import { followRunEvents } from '../sse';
import { Legend } from './WorkflowsPage';
import { RerunCompare } from './RerunCompare';
import { planToOverlays, RerunPanel, usePlan, type RerunRequestView } from './RerunPanel';
import { statusOverlays } from './runModel';
import { StepPanel } from './StepPanel';
import { Timeline } from './Timeline';

type Live = 'connecting' | 'live' | 'ended' | 'error';

export function RunPage({ id }: { id: string }) {
  const qc = useQueryClient();
  const [live, setLive] = useState<Live>('connecting');
  const run = useQuery({
    queryKey: ['run', id],
    queryFn: () => api<RunDetail>(`/api/v1/runs/${id}`),
    // An event is a hint: while the run is active its status is also polled (every 2 s without
    // the stream, every 5 s with it), so a missed or late event cannot leave the page stale.
    refetchInterval: (q) =>
      q.state.data && ACTIVE_RUN_STATUSES.has(q.state.data.status)
        ? live === 'live'
          ? 5000
          : 2000
        : false,
  });
  const active = run.data ? ACTIVE_RUN_STATUSES.has(run.data.status) : false;
  const steps = useQuery({
    queryKey: ['steps', id],
    queryFn: () => api<{ data: StepRun[] }>(`/api/v1/runs/${id}/steps`),
    // The stream drives refreshes; polling only while it is down.
    refetchInterval: active && live !== 'live' ? 2000 : false,
  });
  const workflow = useQuery({
    queryKey: ['workflow', run.data?.workflowId],
    queryFn: () =>
      api<WorkflowDetail>(`/api/v1/workflows/${encodeURIComponent(run.data!.workflowId)}`),
    enabled: !!run.data,
  });
  const waitpoints = useQuery({
    queryKey: ['waitpoints', id],
    queryFn: () => api<{ data: Waitpoint[] }>(`/api/v1/runs/${id}/waitpoints`),
    enabled: !!run.data,
    refetchInterval: active ? 3000 : false,
  });

  // Live: every event schedules one refresh of the run and its steps, coalesced over a window
  // that grows with the run (150 ms for a small run, up to 1 s for 1,000 step runs), so a busy
  // big run does not re-read its whole step list on every event.
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const coalesceMs = useRef(150);
  coalesceMs.current = Math.min(1000, 150 + (steps.data?.data.length ?? 0));
  const refresh = useCallback(() => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      void qc.invalidateQueries({ queryKey: ['run', id] });
      void qc.invalidateQueries({ queryKey: ['steps', id] });
      void qc.invalidateQueries({ queryKey: ['waitpoints', id] });
      void qc.invalidateQueries({ queryKey: ['run-state', id] });
    }, coalesceMs.current);
  }, [qc, id]);
  // The run seen ending (by the poll or an event): read its steps and state once more.
  const wasActive = useRef(false);
  useEffect(() => {
    if (wasActive.current && !active) refresh();
    wasActive.current = active;
  }, [active, refresh]);
  useEffect(() => {
    if (!run.data) return;
    if (!ACTIVE_RUN_STATUSES.has(run.data.status)) {
      setLive('ended');
      return;
    }
    const controller = new AbortController();
    void followRunEvents(id, {
      signal: controller.signal,
      onEvent: refresh,
      onState: (s) => setLive(s),
    }).then(refresh);
    return () => controller.abort();
    // Reconnects only when the run goes from ended to active (resume), not on every refresh.
  }, [id, active, refresh]);

  const [selected, setSelected] = useState<string | null>(null);
  const [selectedKey, setSelectedKey] = useState<string | null>(null);
  const [travel, setTravel] = useState<string | null>(null);
  const [rerun, setRerun] = useState<RerunRequestView | null>(null);

  const overlays = useMemo(() => statusOverlays(steps.data?.data ?? []), [steps.data]);
  const plan = usePlan(id, rerun);
  const planOverlays = useMemo(() => (plan.data ? planToOverlays(plan.data) : {}), [plan.data]);
  const select = useCallback((stepId: string | null) => {
    setSelected(stepId);
    setSelectedKey(null);
  }, []);

  const actions = useCallback(
    (stepId: string) =>
      active ? null : (
        <>
          <button
            type="button"
            className="small-btn"
            onClick={() => setRerun({ fromStep: stepId })}
          >
            Run from here
          </button>
          <button
            type="button"
            className="small-btn"
            onClick={() => setRerun({ fromStep: stepId, untilStep: stepId })}
          >
            Run until here
          </button>
        </>
      ),
    [active],
  );

  if (run.isPending) return <Loading what={`run ${id}`} />;
  if (run.error) return <ErrorBox error={run.error} what={`run ${id}`} />;
  const r = run.data;
  const graph = workflow.data?.graph ?? null;
  const otherVersion = workflow.data && workflow.data.currentVersion?.id !== r.versionId;
  const version = workflow.data?.versions.find((v) => v.id === r.versionId);

  return (
    <div className="page run-page">
      <div className="crumbs">
        <Link href="/runs">Runs</Link> / <span className="mono">{r.id}</span>
      </div>
      <RunHeader run={r} live={live} version={version?.version} />
      {graph ? (
        <div className="split">
          <div className="split-main">
            {otherVersion ? (
              <p className="note">
                This run used v{version?.version ?? '?'}; the graph shows the current version v
                {workflow.data?.currentVersion?.version}.
              </p>
            ) : null}
            <FlowGraph
              graph={graph}
              overlays={rerun ? planOverlays : overlays}
              selected={selected}
              onSelect={select}
              actions={rerun ? undefined : actions}
              height={480}
            />
            <Legend />
          </div>
          <aside className="panel" aria-label={rerun ? 'Rerun plan' : 'Step details'}>
            {rerun ? (
              <RerunPanel
                run={r}
                request={rerun}
                plan={plan}
                onChange={setRerun}
                onClose={() => setRerun(null)}
              />
            ) : selected ? (
              <StepPanel
                run={r}
                stepId={selected}
                node={graph.nodes.find((n) => n.id === selected)}
                steps={(steps.data?.data ?? []).filter((s) => s.stepId === selected)}
                waitpoints={waitpoints.data?.data ?? []}
                selectedKey={selectedKey}
                onSelectKey={setSelectedKey}
                onRerun={active ? undefined : setRerun}
              />
            ) : (
              <RunSummary
                run={r}
                steps={steps.data?.data}
                waitpoints={waitpoints.data?.data ?? []}
              />
            )}
          </aside>
        </div>
      ) : workflow.error ? (
        <ErrorBox error={workflow.error} what="the workflow graph" />
      ) : (
        <Loading what="the graph" />
      )}
      {steps.error ? <ErrorBox error={steps.error} what="step runs" /> : null}
      {steps.data ? (
        <Timeline
          run={r}
          steps={steps.data.data}
          travel={travel}
          onTravel={(s) => {
            setTravel(s?.id ?? null);
            if (s) {
              setSelected(s.stepId);
              setSelectedKey(s.stepKey);
            }
          }}
        />
      ) : null}
      {r.rerunOf && steps.data ? <RerunCompare run={r} steps={steps.data.data} /> : null}
      <RunData run={r} />
    </div>
  );
}

function RunHeader({
  run,
  live,
  version,
}: {
  run: RunDetail;
  live: Live;
  version: number | undefined;
}) {
  const qc = useQueryClient();
  const cancel = useMutation({
    mutationFn: () => api<Run>(`/api/v1/runs/${run.id}/cancel`, { method: 'POST' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['run', run.id] }),
  });
  const resume = useMutation({
    mutationFn: () => api<Run>(`/api/v1/runs/${run.id}/resume`, { method: 'POST' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['run', run.id] }),
  });
  const active = ACTIVE_RUN_STATUSES.has(run.status);
  return (
    <div className="run-header">
      <div className="run-title">
        <h1 className="mono">{run.id}</h1>
        <StatusBadge status={run.status} />
        {active ? (
          <span className={`live live-${live}`} data-testid="live">
            {live === 'live'
              ? '● live'
              : live === 'connecting'
                ? 'connecting…'
                : live === 'error'
                  ? 'reconnecting…'
                  : ''}
          </span>
        ) : null}
        <span className="spacer" />
        {run.status === 'paused' ? (
          <button type="button" onClick={() => resume.mutate()} disabled={resume.isPending}>
            Resume
          </button>
        ) : null}
        {active ? (
          <button
            type="button"
            className="danger"
            onClick={() => {
              if (window.confirm(`Cancel run ${run.id}? Running attempts are aborted.`))
                cancel.mutate();
            }}
            disabled={cancel.isPending}
          >
            Cancel run
          </button>
        ) : null}
      </div>
      <dl className="facts">
        <div>
          <dt>Workflow</dt>
          <dd>
            <Link href={`/workflows/${encodeURIComponent(run.workflowId)}`}>{run.workflowId}</Link>
          </dd>
        </div>
        <div>
          <dt>Version</dt>
          <dd>{version ? `v${version}` : '—'}</dd>
        </div>
        <div>
          <dt>Trigger</dt>
          <dd>{run.trigger.kind}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <Time iso={run.createdAt} />
          </dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>
            <Duration from={run.startedAt} to={run.finishedAt} />
          </dd>
        </div>
        <div>
          <dt>Steps</dt>
          <dd>
            {run.steps.byStatus.succeeded}/{run.steps.total} succeeded
            {run.steps.byStatus.failed ? `, ${run.steps.byStatus.failed} failed` : ''}
          </dd>
        </div>
        {run.rerunOf ? (
          <div>
            <dt>Rerun of</dt>
            <dd>
              <RunLink id={run.rerunOf} /> from <code>{run.rerunFromStep}</code>
            </dd>
          </div>
        ) : null}
        {run.parentRunId ? (
          <div>
            <dt>Parent run</dt>
            <dd>
              <RunLink id={run.parentRunId} />
            </dd>
          </div>
        ) : null}
      </dl>
      {run.error?.error ? (
        <div className="error-box" role="alert">
          <strong>Failed at {run.error.stepKey ?? 'a step'}:</strong> {run.error.error.message}
        </div>
      ) : null}
      {cancel.error ? <ErrorBox error={cancel.error} what="cancel" /> : null}
      {resume.error ? <ErrorBox error={resume.error} what="resume" /> : null}
    </div>
  );
}

function RunSummary({
  run,
  steps,
  waitpoints,
}: {
  run: RunDetail;
  steps: StepRun[] | undefined;
  waitpoints: Waitpoint[];
}) {
  const children = waitpoints.filter((w) => w.childRunId);
  const reruns = useQuery({
    queryKey: ['reruns-of', run.id],
    queryFn: () =>
      api<{ data: Run[] }>(
        `/api/v1/runs?workflowId=${encodeURIComponent(run.workflowId)}&limit=100`,
      ),
    select: (d) => d.data.filter((x) => x.rerunOf === run.id),
  });
  const waiting = waitpoints.filter((w) => w.status === 'waiting');
  return (
    <div className="stack">
      <h2>Run</h2>
      <p className="muted">
        Select a step on the graph for its input, output, attempts and state patch — and to run from
        it.
      </p>
      {waiting.length ? (
        <div className="note">
          Waiting on {waiting.map((w) => `${w.kind} ${w.stepKey}`).join(', ')} — select the step to
          act on it.
        </div>
      ) : null}
      <h3>Lineage</h3>
      <ul className="plain">
        {run.rerunOf ? (
          <li>
            rerun of <RunLink id={run.rerunOf} />
          </li>
        ) : null}
        {run.parentRunId ? (
          <li>
            child of <RunLink id={run.parentRunId} />
          </li>
        ) : null}
        {children.map((w) => (
          <li key={w.token}>
            child run <RunLink id={w.childRunId!} /> (step {w.stepKey})
          </li>
        ))}
        {reruns.data?.map((x) => (
          <li key={x.id}>
            rerun <RunLink id={x.id} /> <StatusBadge status={x.status} />
          </li>
        ))}
        {!run.rerunOf && !run.parentRunId && children.length === 0 && !reruns.data?.length ? (
          <li className="muted">No related runs.</li>
        ) : null}
      </ul>
      {steps && steps.length === 0 ? <Empty title="No step has started yet." /> : null}
    </div>
  );
}

function RunData({ run }: { run: RunDetail }) {
  const [tab, setTab] = useState<'input' | 'final' | 'state'>('input');
  const state = useQuery({
    queryKey: ['run-state', run.id],
    queryFn: () =>
      api<{ state: Record<string, unknown>; finalState: unknown; finalDataclipId: string | null }>(
        `/api/v1/runs/${run.id}/state`,
      ),
    retry: false,
  });
  return (
    <Section
      title="Run data"
      right={
        <div role="tablist" className="tabs">
          {(['input', 'final', 'state'] as const).map((t) => (
            <button
              key={t}
              role="tab"
              type="button"
              aria-selected={tab === t}
              className={tab === t ? 'tab active' : 'tab'}
              onClick={() => setTab(t)}
            >
              {t === 'input' ? 'Input' : t === 'final' ? 'Final state' : 'Run state'}
            </button>
          ))}
        </div>
      }
    >
      {tab === 'input' ? <DataclipView id={run.inputDataclipId} label="Run input" /> : null}
      {tab === 'final' ? (
        run.finalDataclipId ? (
          <DataclipView id={run.finalDataclipId} label="Final state" />
        ) : (
          <p className="muted">
            {ACTIVE_RUN_STATUSES.has(run.status)
              ? 'Set when the run ends.'
              : 'This run ended without a final state.'}
          </p>
        )
      ) : null}
      {tab === 'state' ? (
        state.isPending ? (
          <Loading what="run state" />
        ) : state.error ? (
          isMissingRoute(state.error) ? (
            <p className="muted">
              This server does not serve the run state yet (GET /api/v1/runs/{'{id}'}/state); the
              timeline can fold it from step patches.
            </p>
          ) : (
            <ErrorBox error={state.error} what="run state" />
          )
        ) : (
          <JsonValue value={state.data.state} name="Run state" />
        )
      ) : null}
    </Section>
  );
}
