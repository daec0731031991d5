/**
 * Run from here / until here / from this iteration: the dry-run plan of
 * `POST /api/v1/runs/{id}/rerun` drawn on the graph (rerun / reuse / skip, reason on hover) and
 * listed here, with the version (original or current) and an optional new input; then the rerun
 * starts and the page follows it.
 */
import { useMutation, useQuery, type UseQueryResult } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { useLocation } from 'wouter';
import { api, type RerunPlan, type Run } from '../api';
import { ErrorBox, Loading } from '../components/ui';
import type { NodeOverlay } from '../graph/FlowGraph';

export interface RerunRequestView {
  fromStep: string;
  untilStep?: string;
  version?: 'original' | 'current';
  /** JSON text of a new input; absent: the source run's input. */
  input?: string;
}

function body(request: RerunRequestView, dryRun: boolean): Record<string, unknown> {
  const b: Record<string, unknown> = { fromStep: request.fromStep, dryRun };
  if (request.untilStep) b.untilStep = request.untilStep;
  if (request.version) b.version = request.version;
  if (request.input !== undefined && request.input.trim() !== '')
    b.input = JSON.parse(request.input) as unknown;
  return b;
}

function inputError(request: RerunRequestView | null): string | null {
  if (!request?.input?.trim()) return null;
  try {
    JSON.parse(request.input);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

export function usePlan(
  runId: string,
  request: RerunRequestView | null,
): UseQueryResult<RerunPlan> {
  const valid = request !== null && inputError(request) === null;
  return useQuery({
    queryKey: ['plan', runId, request],
    queryFn: async () =>
      (
        await api<{ plan: RerunPlan }>(`/api/v1/runs/${runId}/rerun`, {
          method: 'POST',
          body: body(request!, true),
        })
      ).plan,
    enabled: valid,
    retry: false,
    staleTime: 5000,
  });
}

export function planToOverlays(plan: RerunPlan): Record<string, NodeOverlay> {
  const out: Record<string, NodeOverlay> = {};
  for (const n of plan.nodes) {
    const o: NodeOverlay = { fate: n.fate, reason: n.reason, detail: n.detail };
    out[n.stepId] = o;
  }
  return out;
}

const REASONS: Record<string, string> = {
  target: 'the step you picked',
  definition_changed: 'its code or config changed in this version',
  new_step: 'new in this version',
  missing_output: 'its earlier output is missing or wiped',
  upstream_changed: 'a step before it reruns',
  input_changed: 'its input differs from the recorded one',
  previous_failure: 'it failed in the source run',
};

export function RerunPanel({
  run,
  request,
  plan,
  onChange,
  onClose,
}: {
  run: Run;
  request: RerunRequestView;
  plan: UseQueryResult<RerunPlan>;
  onChange: (r: RerunRequestView) => void;
  onClose: () => void;
}) {
  const [, navigate] = useLocation();
  const [newInput, setNewInput] = useState(request.input !== undefined);
  const [draft, setDraft] = useState(request.input ?? '');
  const bad = inputError({ ...request, input: draft });
  const start = useMutation({
    mutationFn: () =>
      api<{ run: Run; plan: RerunPlan }>(`/api/v1/runs/${run.id}/rerun`, {
        method: 'POST',
        body: body(request, false),
      }),
    onSuccess: (res) => navigate(`/runs/${res.run.id}`),
  });
  const title =
    request.untilStep && request.untilStep === request.fromStep
      ? `Run until ${request.untilStep}`
      : `Run from ${request.fromStep}`;
  const grouped = useMemo(() => {
    const g: Record<string, RerunPlan['nodes']> = { rerun: [], reuse: [], skip: [] };
    for (const n of plan.data?.nodes ?? []) g[n.fate]!.push(n);
    return g;
  }, [plan.data]);

  return (
    <div className="stack" data-testid="rerun-panel">
      <div className="row">
        <h2>{title}</h2>
        <span className="spacer" />
        <button type="button" className="ghost" onClick={onClose} aria-label="Close the rerun plan">
          Close
        </button>
      </div>
      <fieldset className="row">
        <legend>Version</legend>
        {(['original', 'current'] as const).map((v) => (
          <label key={v} className="check">
            <input
              type="radio"
              name="rerun-version"
              checked={(request.version ?? 'original') === v}
              onChange={() => onChange({ ...request, version: v })}
            />
            {v === 'original' ? 'the run’s version' : 'current version'}
          </label>
        ))}
      </fieldset>
      <label className="check">
        <input
          type="checkbox"
          checked={newInput}
          onChange={(e) => {
            setNewInput(e.target.checked);
            if (!e.target.checked) {
              const rest = { ...request };
              delete rest.input;
              onChange(rest);
            }
          }}
        />
        New run input
      </label>
      {newInput ? (
        <>
          <textarea
            className="mono"
            rows={5}
            value={draft}
            placeholder='{"key": "value"}'
            onChange={(e) => setDraft(e.target.value)}
            aria-label="New run input (JSON)"
          />
          {bad ? <div className="field-error">Not JSON: {bad}</div> : null}
          <button
            type="button"
            onClick={() => onChange({ ...request, input: draft })}
            disabled={!!bad}
          >
            Update plan
          </button>
        </>
      ) : null}
      {plan.isPending ? (
        <Loading what="the plan" />
      ) : plan.error ? (
        <ErrorBox error={plan.error} what="the plan" />
      ) : (
        <>
          <div className="plan-counts" data-testid="plan-counts">
            <span className="badge fate-rerun">{plan.data.counts.rerun} rerun</span>
            <span className="badge fate-reuse">{plan.data.counts.reuse} reused</span>
            <span className="badge fate-skip">{plan.data.counts.skip} skipped</span>
          </div>
          {plan.data.iterations ? (
            <div className="note" data-testid="plan-iterations">
              {plan.data.iterations.kind === 'loop' ? 'Loop' : 'Parallel'}{' '}
              <code>{plan.data.iterations.owner}</code>: of {plan.data.iterations.sourceCount}{' '}
              {plan.data.iterations.kind === 'loop' ? 'iterations' : 'branches'},{' '}
              {plan.data.iterations.reuse.length ? (
                <>[{plan.data.iterations.reuse.join(', ')}] kept, </>
              ) : null}
              [{plan.data.iterations.rerun.join(', ')}] run again
              {plan.data.iterations.kind === 'loop' ? ' (and any later ones the loop reaches)' : ''}
              .
            </div>
          ) : null}
          {plan.data.notes.map((n) => (
            <p key={n} className="note">
              {n}
            </p>
          ))}
          <ul className="plan-list" data-testid="plan-list">
            {(['rerun', 'reuse', 'skip'] as const).flatMap((fate) =>
              grouped[fate]!.map((n) => (
                <li key={n.stepId} data-fate={n.fate} data-step={n.stepId} title={n.detail}>
                  <span className={`badge fate-${n.fate}`}>{n.fate}</span>{' '}
                  <strong>{n.stepId}</strong>
                  {n.scope ? <span className="muted small"> in {n.scope}</span> : null}
                  <div className="muted small">
                    {n.detail || (n.reason ? (REASONS[n.reason] ?? n.reason) : '')}
                  </div>
                </li>
              )),
            )}
          </ul>
          {start.error ? <ErrorBox error={start.error} what="the rerun" /> : null}
          <button
            type="button"
            className="primary"
            onClick={() => start.mutate()}
            disabled={start.isPending || !!bad}
          >
            {start.isPending ? 'Starting…' : `Start rerun (${plan.data.counts.rerun} steps)`}
          </button>
        </>
      )}
    </div>
  );
}
