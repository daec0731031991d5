/**
 * The selected step: its runs (iterations / branches to pick from), input and output, attempts
 * with errors, stacks and durations, its state patch, where a reused result came from, an open
 * approval's form, and the rerun actions.
 */
import { useState } from 'react';
import { reusedSource, type GraphNode, type Run, type StepRun, type Waitpoint } from '../api';
import { ApprovalForm } from '../components/ApprovalForm';
import { DataclipView, JsonValue } from '../components/JsonView';
import { formatDuration, RunLink, StatusBadge, Time } from '../components/ui';
import type { RerunRequestView } from './RerunPanel';
import { displayStatus } from './runModel';

export function StepPanel({
  run,
  stepId,
  node,
  steps,
  waitpoints,
  selectedKey,
  onSelectKey,
  onRerun,
}: {
  run: Run;
  stepId: string;
  node: GraphNode | undefined;
  steps: StepRun[];
  waitpoints: Waitpoint[];
  selectedKey: string | null;
  onSelectKey: (key: string | null) => void;
  onRerun: ((r: RerunRequestView) => void) | undefined;
}) {
  // Without a pick: the step's own run, else the first failed iteration, else the first one.
  const step =
    steps.find((s) => s.stepKey === selectedKey) ??
    steps.find((s) => s.stepKey === stepId) ??
    steps.find((s) => s.status === 'failed') ??
    steps[0];
  const many = steps.length > 1 || (steps[0] && steps[0].stepKey !== stepId);
  const iteration = step && step.stepKey !== stepId ? step.stepKey : null;
  return (
    <div className="stack" data-testid="step-panel">
      <div className="row">
        <h2>{stepId}</h2>
        {node ? <span className="muted">{node.kind}</span> : null}
        <span className="spacer" />
        <button
          type="button"
          className="ghost"
          onClick={() => onSelectKey(null)}
          hidden={!selectedKey}
          aria-label="Back to all iterations"
        >
          All
        </button>
      </div>
      {onRerun ? (
        <div className="row wrap">
          <button type="button" onClick={() => onRerun({ fromStep: stepId })}>
            Run from here
          </button>
          <button type="button" onClick={() => onRerun({ fromStep: stepId, untilStep: stepId })}>
            Run until here
          </button>
          {iteration ? (
            <button type="button" onClick={() => onRerun({ fromStep: iteration })}>
              From this iteration
            </button>
          ) : null}
        </div>
      ) : (
        <p className="muted small">Rerun actions appear when the run has ended.</p>
      )}
      {steps.length === 0 ? (
        <p className="muted">This step has not run in this run (not reached, or skipped).</p>
      ) : null}
      {many ? (
        <div className="iterations" role="list" aria-label="Iterations and branches">
          {steps.map((s) => (
            <button
              type="button"
              role="listitem"
              key={s.id}
              className={`iter st-${displayStatus(s)} ${s === step ? 'is-selected' : ''}`}
              onClick={() => onSelectKey(s.stepKey)}
              title={`${s.stepKey}: ${displayStatus(s)}`}
            >
              {s.stepKey.slice(stepId.length) || s.stepKey}
            </button>
          ))}
        </div>
      ) : null}
      {step ? (
        <StepRunDetail
          run={run}
          step={step}
          waitpoints={waitpoints.filter((w) => w.stepKey === step.stepKey)}
        />
      ) : many ? (
        <p className="muted">Pick an iteration.</p>
      ) : null}
    </div>
  );
}

function StepRunDetail({
  run,
  step,
  waitpoints,
}: {
  run: Run;
  step: StepRun;
  waitpoints: Waitpoint[];
}) {
  const [tab, setTab] = useState<'output' | 'input' | 'attempts' | 'state'>(
    step.status === 'failed' ? 'attempts' : 'output',
  );
  const source = reusedSource(step);
  const open = waitpoints.filter((w) => w.status === 'waiting');
  return (
    <div className="stack">
      <div className="row wrap">
        <StatusBadge status={displayStatus(step)} />
        <span className="mono small">{step.stepKey}</span>
        <span className="muted small">
          attempt {step.attemptCount}/{step.maxAttempts}
        </span>
        {step.startedAt && step.finishedAt ? (
          <span className="muted small">
            {formatDuration(Date.parse(step.finishedAt) - Date.parse(step.startedAt))}
          </span>
        ) : null}
      </div>
      {source ? (
        <div className="note" data-testid="reused-from">
          Reused from{' '}
          {source.runId ? (
            <RunLink id={source.runId} />
          ) : run.rerunOf ? (
            <RunLink id={run.rerunOf} />
          ) : (
            'the source run'
          )}{' '}
          (step run <span className="mono small">{source.stepRunId}</span>): the output is the same
          dataclip, not a copy.
        </div>
      ) : null}
      {step.error ? (
        <div className="error-box">
          <strong>{step.error.name}:</strong> {step.error.message}
        </div>
      ) : null}
      {open.map((w) =>
        w.kind === 'approval' ? (
          <div key={w.token} className="card">
            <h3>Approval waiting</h3>
            <p className="muted small">
              Since <Time iso={w.createdAt} />
              {w.resumeAt ? (
                <>
                  ; times out <Time iso={w.resumeAt} />
                </>
              ) : null}
            </p>
            <ApprovalForm waitpoint={w} />
          </div>
        ) : (
          <div key={w.token} className="note">
            {w.kind === 'sleep' ? (
              <>
                Sleeping until {w.resumeAt ? new Date(w.resumeAt).toLocaleString() : '—'} (
                {w.resumeAt ? <Time iso={w.resumeAt} /> : null})
              </>
            ) : (
              <>Waiting for child run {w.childRunId ? <RunLink id={w.childRunId} /> : '—'}</>
            )}
          </div>
        ),
      )}
      <div role="tablist" className="tabs">
        {(['output', 'input', 'attempts', 'state'] as const).map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            aria-selected={tab === t}
            className={tab === t ? 'tab active' : 'tab'}
            onClick={() => setTab(t)}
          >
            {t === 'state' ? 'State patch' : t[0]!.toUpperCase() + t.slice(1)}
            {t === 'attempts' ? ` (${step.attempts.length})` : ''}
          </button>
        ))}
      </div>
      {tab === 'output' ? <DataclipView id={step.outputDataclipId} label="Output" /> : null}
      {tab === 'input' ? <DataclipView id={step.inputDataclipId} label="Input" /> : null}
      {tab === 'attempts' ? <Attempts step={step} /> : null}
      {tab === 'state' ? (
        !('statePatch' in step) ? (
          <p className="muted">This server does not report state patches per step yet.</p>
        ) : step.statePatch ? (
          <JsonValue value={step.statePatch} name="State patch" />
        ) : (
          <p className="muted">This step did not change the run state.</p>
        )
      ) : null}
    </div>
  );
}

function Attempts({ step }: { step: StepRun }) {
  if (step.attempts.length === 0)
    return (
      <p className="muted">
        No attempt has run{step.reusedFrom ? ' (the result was reused)' : ''}.
      </p>
    );
  return (
    <ol className="attempts">
      {step.attempts.map((a) => (
        <li key={a.number}>
          <div className="row wrap">
            <strong>#{a.number}</strong> <StatusBadge status={a.status} />
            <span className="muted small">
              {a.durationMs !== undefined
                ? formatDuration(a.durationMs)
                : a.finishedAt
                  ? formatDuration(Date.parse(a.finishedAt) - Date.parse(a.startedAt))
                  : 'running'}{' '}
              · worker {a.workerId}
            </span>
          </div>
          {a.error ? (
            <details>
              <summary>
                {a.error.name}: {a.error.message}
              </summary>
              {a.error.stack ? <pre className="code-block small">{a.error.stack}</pre> : null}
            </details>
          ) : null}
        </li>
      ))}
    </ol>
  );
}
