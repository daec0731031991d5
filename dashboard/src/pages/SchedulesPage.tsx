/**
 * Schedules and webhooks: list, create, pause / resume, delete. A schedule's next fire times are
 * computed here with croner (the engine's own cron library) in the schedule's time zone and shown
 * in the viewer's; a webhook's URL is built from this page's origin, ready to copy.
 */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Cron } from 'croner';
import { useState } from 'react';
import { api, type Schedule, type Webhook, type Workflow } from '../api';
import { Empty, ErrorBox, Loading, relative, Section } from '../components/ui';

const userZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

export function nextTimes(cron: string, timezone: string, n = 3): Date[] | string {
  try {
    return new Cron(cron, { timezone, paused: true }).nextRuns(n);
  } catch (e) {
    return (e as Error).message;
  }
}

function When({ date }: { date: Date }) {
  return (
    <span>
      {relative(date.toISOString())}{' '}
      <span className="muted small">
        ({date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })})
      </span>
    </span>
  );
}

export function SchedulesPage() {
  const workflows = useQuery({
    queryKey: ['workflows'],
    queryFn: () => api<{ data: Workflow[] }>('/api/v1/workflows'),
  });
  return (
    <div className="page">
      <h1>Schedules &amp; webhooks</h1>
      <p className="muted small">Times are shown in your time zone, {userZone}.</p>
      <Schedules workflows={workflows.data?.data ?? []} />
      <Webhooks workflows={workflows.data?.data ?? []} />
    </div>
  );
}

function Schedules({ workflows }: { workflows: Workflow[] }) {
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: ['schedules'],
    queryFn: () => api<{ data: Schedule[] }>('/api/v1/schedules'),
    refetchInterval: 15_000,
  });
  const patch = useMutation({
    mutationFn: (v: { id: string; enabled: boolean }) =>
      api<Schedule>(`/api/v1/schedules/${v.id}`, { method: 'PATCH', body: { enabled: v.enabled } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['schedules'] }),
  });
  const remove = useMutation({
    mutationFn: (id: string) => api(`/api/v1/schedules/${id}`, { method: 'DELETE' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['schedules'] }),
  });
  return (
    <Section title="Schedules">
      <ScheduleForm workflows={workflows} />
      {patch.error ? <ErrorBox error={patch.error} what="the schedule" /> : null}
      {remove.error ? <ErrorBox error={remove.error} what="the schedule" /> : null}
      {q.isPending ? (
        <Loading what="schedules" />
      ) : q.error ? (
        <ErrorBox error={q.error} what="schedules" />
      ) : q.data.data.length === 0 ? (
        <Empty title="No schedules yet.">
          Create one above, or declare it in code with the workflow.
        </Empty>
      ) : (
        <table className="table" data-testid="schedules-table">
          <thead>
            <tr>
              <th>Workflow</th>
              <th>Cron</th>
              <th>Input</th>
              <th>Next runs (your time)</th>
              <th>State</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {q.data.data.map((s) => {
              const next = nextTimes(s.cron, s.timezone);
              return (
                <tr key={s.id} data-schedule={s.id}>
                  <td>
                    {s.workflowId}
                    {s.name ? <div className="muted small">{s.name} (code)</div> : null}
                  </td>
                  <td>
                    <code>{s.cron}</code>
                    <div className="muted small">{s.timezone}</div>
                  </td>
                  <td className="small">
                    {s.input.mode.replace(/_/g, ' ')}
                    {s.input.step ? ` (${s.input.step})` : ''}
                  </td>
                  <td className="small" data-testid="next-times">
                    {!s.enabled ? (
                      <span className="muted">paused</span>
                    ) : typeof next === 'string' ? (
                      <span className="field-error">{next}</span>
                    ) : (
                      <ul className="plain">
                        {next.map((d) => (
                          <li key={d.getTime()}>
                            <When date={d} />
                          </li>
                        ))}
                      </ul>
                    )}
                  </td>
                  <td>{s.enabled ? 'active' : 'paused'}</td>
                  <td className="row">
                    <button
                      type="button"
                      onClick={() => patch.mutate({ id: s.id, enabled: !s.enabled })}
                    >
                      {s.enabled ? 'Pause' : 'Resume'}
                    </button>
                    <button
                      type="button"
                      className="danger"
                      onClick={() => {
                        if (window.confirm(`Delete the schedule ${s.cron} of ${s.workflowId}?`))
                          remove.mutate(s.id);
                      }}
                    >
                      Delete
                    </button>
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

function ScheduleForm({ workflows }: { workflows: Workflow[] }) {
  const qc = useQueryClient();
  const [workflowId, setWorkflowId] = useState('');
  const [cron, setCron] = useState('0 9 * * 1-5');
  const [timezone, setTimezone] = useState(userZone);
  const [mode, setMode] = useState('none');
  const [value, setValue] = useState('{}');
  const [step, setStep] = useState('');
  const preview = nextTimes(cron, timezone, 1);
  const create = useMutation({
    mutationFn: () => {
      const input: Record<string, unknown> = { mode };
      if (mode === 'static') input.value = JSON.parse(value) as unknown;
      if (mode === 'previous_step_output') input.step = step;
      return api<Schedule>('/api/v1/schedules', {
        method: 'POST',
        body: { workflowId: workflowId || workflows[0]?.id, cron, timezone, input },
      });
    },
    onSuccess: () => qc.invalidateQueries({ queryKey: ['schedules'] }),
  });
  return (
    <form
      className="inline-form"
      aria-label="New schedule"
      onSubmit={(e) => {
        e.preventDefault();
        create.mutate();
      }}
    >
      <label>
        Workflow
        <select
          value={workflowId || workflows[0]?.id || ''}
          onChange={(e) => setWorkflowId(e.target.value)}
          required
        >
          {workflows.map((w) => (
            <option key={w.id} value={w.id}>
              {w.id}
            </option>
          ))}
        </select>
      </label>
      <label>
        Cron
        <input
          value={cron}
          onChange={(e) => setCron(e.target.value)}
          className="mono"
          size={14}
          required
          aria-describedby="cron-preview"
        />
      </label>
      <label>
        Time zone
        <input value={timezone} onChange={(e) => setTimezone(e.target.value)} size={16} required />
      </label>
      <label>
        Input
        <select value={mode} onChange={(e) => setMode(e.target.value)}>
          <option value="none">none</option>
          <option value="static">static value</option>
          <option value="previous_final_state">previous final state</option>
          <option value="previous_step_output">previous step output</option>
        </select>
      </label>
      {mode === 'static' ? (
        <label>
          Value (JSON)
          <input value={value} onChange={(e) => setValue(e.target.value)} className="mono" />
        </label>
      ) : null}
      {mode === 'previous_step_output' ? (
        <label>
          Step
          <input value={step} onChange={(e) => setStep(e.target.value)} />
        </label>
      ) : null}
      <button
        type="submit"
        className="primary"
        disabled={create.isPending || workflows.length === 0}
      >
        Create schedule
      </button>
      <span id="cron-preview" className="muted small">
        {typeof preview === 'string' ? (
          preview
        ) : preview[0] ? (
          <>
            first: <When date={preview[0]} />
          </>
        ) : null}
      </span>
      {create.error ? <ErrorBox error={create.error} what="the schedule" /> : null}
    </form>
  );
}

function Webhooks({ workflows }: { workflows: Workflow[] }) {
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: ['webhooks'],
    queryFn: () => api<{ data: Webhook[] }>('/api/v1/webhooks'),
  });
  const [workflowId, setWorkflowId] = useState('');
  const [label, setLabel] = useState('');
  const [signed, setSigned] = useState(false);
  const [secret, setSecret] = useState<{ id: string; secret: string } | null>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: () =>
      api<Webhook>('/api/v1/webhooks', {
        method: 'POST',
        body: { workflowId: workflowId || workflows[0]?.id, ...(label ? { label } : {}), signed },
      }),
    onSuccess: (w) => {
      if (w.secret) setSecret({ id: w.id, secret: w.secret });
      void qc.invalidateQueries({ queryKey: ['webhooks'] });
    },
  });
  const patch = useMutation({
    mutationFn: (v: { id: string; enabled: boolean }) =>
      api(`/api/v1/webhooks/${v.id}`, { method: 'PATCH', body: { enabled: v.enabled } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['webhooks'] }),
  });
  const remove = useMutation({
    mutationFn: (id: string) => api(`/api/v1/webhooks/${id}`, { method: 'DELETE' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['webhooks'] }),
  });
  const copy = (text: string) => {
    void navigator.clipboard?.writeText(text).then(
      () => setCopied(text),
      () => setCopied(null),
    );
  };
  return (
    <Section title="Webhooks">
      <form
        className="inline-form"
        aria-label="New webhook"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <label>
          Workflow
          <select
            value={workflowId || workflows[0]?.id || ''}
            onChange={(e) => setWorkflowId(e.target.value)}
          >
            {workflows.map((w) => (
              <option key={w.id} value={w.id}>
                {w.id}
              </option>
            ))}
          </select>
        </label>
        <label>
          Label
          <input
            value={label}
            onChange={(e) => setLabel(e.target.value)}
            placeholder="e.g. Stripe"
          />
        </label>
        <label className="check">
          <input type="checkbox" checked={signed} onChange={(e) => setSigned(e.target.checked)} />{' '}
          signed (HMAC)
        </label>
        <button
          type="submit"
          className="primary"
          disabled={create.isPending || workflows.length === 0}
        >
          Create webhook
        </button>
        {create.error ? <ErrorBox error={create.error} what="the webhook" /> : null}
      </form>
      {secret ? (
        <div className="note">
          Signing secret of {secret.id.slice(0, 16)}… (shown once): <code>{secret.secret}</code>{' '}
          <button type="button" className="link" onClick={() => copy(secret.secret)}>
            Copy
          </button>
        </div>
      ) : null}
      {q.isPending ? (
        <Loading what="webhooks" />
      ) : q.error ? (
        <ErrorBox error={q.error} what="webhooks" />
      ) : q.data.data.length === 0 ? (
        <Empty title="No webhooks yet.">
          A webhook gives a URL that starts a run from any HTTP client; create one above.
        </Empty>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th>Workflow</th>
              <th>URL</th>
              <th>State</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {q.data.data.map((w) => {
              const url = `${window.location.origin}${w.path}`;
              return (
                <tr key={w.id}>
                  <td>
                    {w.workflowId}
                    {w.label ? <div className="muted small">{w.label}</div> : null}
                  </td>
                  <td className="url-cell">
                    <code className="small">{url}</code>{' '}
                    <button
                      type="button"
                      className="link"
                      onClick={() => copy(url)}
                      aria-label={`Copy the URL of webhook ${w.label ?? w.workflowId}`}
                    >
                      {copied === url ? 'Copied' : 'Copy'}
                    </button>
                    {w.signed ? <span className="badge">signed</span> : null}
                  </td>
                  <td>{w.enabled ? 'enabled' : 'disabled'}</td>
                  <td className="row">
                    <button
                      type="button"
                      onClick={() => patch.mutate({ id: w.id, enabled: !w.enabled })}
                    >
                      {w.enabled ? 'Disable' : 'Enable'}
                    </button>
                    <button
                      type="button"
                      className="danger"
                      onClick={() => {
                        if (window.confirm('Delete this webhook? Its URL stops working.'))
                          remove.mutate(w.id);
                      }}
                    >
                      Delete
                    </button>
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
