/**
 * The run's step runs as a Gantt chart (attempts as segments, waits hatched, reused steps as
 * markers), and time travel: pick a step run and see the run state as it was right after that
 * step committed, folded from the committed state patches in commit order.
 */
import { useMemo } from 'react';
import type { Run, StepRun } from '../api';
import { JsonValue } from '../components/JsonView';
import { formatDuration, Section } from '../components/ui';
import { displayStatus, stateAfter, supportsStatePatches, timelineOrder } from './runModel';

const MAX_ROWS = 400;

export function Timeline({
  run,
  steps,
  travel,
  onTravel,
}: {
  run: Run;
  steps: StepRun[];
  travel: string | null;
  onTravel: (s: StepRun | null) => void;
}) {
  const rows = useMemo(() => timelineOrder(steps), [steps]);
  const start = Date.parse(run.startedAt ?? run.createdAt);
  const end = Math.max(
    run.finishedAt ? Date.parse(run.finishedAt) : Date.now(),
    ...rows.map((s) => Date.parse(s.finishedAt ?? s.startedAt ?? s.createdAt)),
    start + 1,
  );
  const span = end - start;
  const pct = (t: number) => `${Math.max(0, Math.min(100, ((t - start) / span) * 100))}%`;
  const width = (a: number, b: number) => `${Math.max(0.4, ((b - a) / span) * 100)}%`;
  const picked = rows.find((s) => s.id === travel);
  const patches = supportsStatePatches(steps);
  const travelled = useMemo(() => (picked ? stateAfter(steps, picked) : null), [picked, steps]);

  return (
    <Section
      title="Timeline"
      right={
        <span className="muted small">
          {formatDuration(span)} · click a step to see the run state right after it
        </span>
      }
    >
      {rows.length === 0 ? (
        <p className="muted">No step has started yet.</p>
      ) : (
        <div className="gantt" role="list" data-testid="timeline">
          {rows.slice(0, MAX_ROWS).map((s) => {
            const status = displayStatus(s);
            const s0 = Date.parse(s.startedAt ?? s.createdAt);
            const s1 = s.finishedAt ? Date.parse(s.finishedAt) : Date.now();
            return (
              <button
                type="button"
                role="listitem"
                key={s.id}
                className={`gantt-row ${s.id === travel ? 'is-selected' : ''}`}
                onClick={() => onTravel(s.id === travel ? null : s)}
                aria-pressed={s.id === travel}
                title={`${s.stepKey}: ${status}${s.finishedAt && s.startedAt ? `, ${formatDuration(s1 - s0)}` : ''}`}
              >
                <span className="gantt-label mono">{s.stepKey}</span>
                <span className="gantt-track">
                  {!s.startedAt && status !== 'reused' ? (
                    <span className="gantt-pending muted">{status}</span>
                  ) : status === 'reused' ? (
                    <span className="gantt-marker st-reused" style={{ left: pct(s0) }}>
                      reused
                    </span>
                  ) : s.attempts.length > 1 ? (
                    s.attempts.map((a) => {
                      const a0 = Date.parse(a.startedAt);
                      const a1 = a.finishedAt ? Date.parse(a.finishedAt) : Date.now();
                      return (
                        <span
                          key={a.number}
                          className={`gantt-bar st-${a.status}`}
                          style={{ left: pct(a0), width: width(a0, a1) }}
                        />
                      );
                    })
                  ) : (
                    <span
                      className={`gantt-bar st-${status}`}
                      style={{ left: pct(s0), width: width(s0, s1) }}
                    />
                  )}
                </span>
              </button>
            );
          })}
          {rows.length > MAX_ROWS ? (
            <p className="muted">{rows.length - MAX_ROWS} more step runs not drawn.</p>
          ) : null}
        </div>
      )}
      {picked ? (
        <div className="time-travel" data-testid="time-travel">
          <h3>
            Run state right after <code>{picked.stepKey}</code> committed
          </h3>
          {!patches ? (
            <p className="muted">
              This server does not report state patches per step yet, so past run states cannot be
              folded.
            </p>
          ) : !picked.finishedAt ? (
            <p className="muted">This step has not committed yet.</p>
          ) : (
            <>
              <p className="muted small">
                Folded from {travelled?.folded ?? 0} committed state patches, in commit order.
              </p>
              <JsonValue value={travelled?.state ?? {}} name="Run state at this point" />
            </>
          )}
        </div>
      ) : null}
    </Section>
  );
}
