/**
 * Workflows: the list, and one workflow's graph, versions, the steps that changed between two
 * versions (by step hash), a trigger form and its latest runs.
 */
import { useMutation, useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { Link, useLocation } from 'wouter';
import { api, type JsonSchema, type Run, type Workflow, type WorkflowDetail } from '../api';
import { Empty, ErrorBox, Loading, RunLink, Section, StatusBadge, Time } from '../components/ui';
import { FlowGraph, type NodeOverlay } from '../graph/FlowGraph';

export function WorkflowsPage() {
  const q = useQuery({
    queryKey: ['workflows'],
    queryFn: () => api<{ data: Workflow[] }>('/api/v1/workflows'),
  });
  return (
    <div className="page">
      <h1>Workflows</h1>
      {q.isPending ? (
        <Loading what="workflows" />
      ) : q.error ? (
        <ErrorBox error={q.error} what="workflows" />
      ) : q.data.data.length === 0 ? (
        <Empty title="No workflows registered yet.">
          Start <code>weft dev</code> with your workflow files (
          <code>weft dev ./workflows/*.ts</code>) or a worker that registers them; they appear here
          as soon as they are registered.
        </Empty>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th>Workflow</th>
              <th>Description</th>
              <th>Version</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {q.data.data.map((w) => (
              <tr key={w.id}>
                <td>
                  <Link href={`/workflows/${encodeURIComponent(w.id)}`}>{w.id}</Link>
                </td>
                <td className="muted">{w.description ?? ''}</td>
                <td>{w.currentVersion ? `v${w.currentVersion.version}` : '—'}</td>
                <td>
                  <Time iso={w.updatedAt} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

export function WorkflowPage({ id }: { id: string }) {
  const q = useQuery({
    queryKey: ['workflow', id],
    queryFn: () => api<WorkflowDetail>(`/api/v1/workflows/${encodeURIComponent(id)}`),
  });
  const runs = useQuery({
    queryKey: ['runs', 'workflow', id],
    queryFn: () =>
      api<{ data: Run[] }>(`/api/v1/runs?workflowId=${encodeURIComponent(id)}&limit=10`),
    refetchInterval: 3000,
  });
  const [selected, setSelected] = useState<string | null>(null);
  const [compare, setCompare] = useState<{ a: string; b: string } | null>(null);

  const overlays = useMemo(() => {
    if (!q.data || !compare) return undefined;
    const a = q.data.versions.find((v) => v.id === compare.a)?.stepHashes;
    const b = q.data.versions.find((v) => v.id === compare.b)?.stepHashes;
    if (!a || !b) return undefined;
    const out: Record<string, NodeOverlay> = {};
    for (const [step, hash] of Object.entries(b)) {
      if (!(step in a)) out[step] = { changed: 'added' };
      else if (a[step] !== hash) out[step] = { changed: 'changed' };
    }
    return out;
  }, [q.data, compare]);

  if (q.isPending) return <Loading what={`workflow ${id}`} />;
  if (q.error) return <ErrorBox error={q.error} what={`workflow ${id}`} />;
  const wf = q.data;
  const node = wf.graph?.nodes.find((n) => n.id === selected);
  return (
    <div className="page">
      <div className="crumbs">
        <Link href="/">Workflows</Link> / <span>{wf.id}</span>
      </div>
      <h1>
        {wf.id}{' '}
        {wf.currentVersion ? <span className="muted">v{wf.currentVersion.version}</span> : null}
      </h1>
      {wf.description ? <p className="muted">{wf.description}</p> : null}
      {wf.graph ? (
        <div className="split">
          <div className="split-main">
            <FlowGraph
              graph={wf.graph}
              overlays={overlays}
              selected={selected}
              onSelect={setSelected}
            />
            <Legend />
          </div>
          <aside className="panel">
            {node ? (
              <>
                <h2>{node.id}</h2>
                <dl className="kv">
                  <dt>Kind</dt>
                  <dd>{node.kind}</dd>
                  {node.scope ? (
                    <>
                      <dt>Inside</dt>
                      <dd>{node.scope}</dd>
                    </>
                  ) : null}
                  <dt>Attempts</dt>
                  <dd>{node.maxAttempts}</dd>
                  {node.timeoutMs ? (
                    <>
                      <dt>Timeout</dt>
                      <dd>{node.timeoutMs} ms</dd>
                    </>
                  ) : null}
                  <dt>Hash</dt>
                  <dd className="mono small">{node.hash.slice(0, 16)}…</dd>
                </dl>
                {node.description ? <p>{node.description}</p> : null}
                {node.control ? (
                  <pre className="code-block">{JSON.stringify(node.control, null, 2)}</pre>
                ) : null}
              </>
            ) : (
              <TriggerForm key={wf.id} workflowId={wf.id} inputSchema={wf.graph.inputSchema} />
            )}
          </aside>
        </div>
      ) : (
        <Empty title="This workflow has no registered version yet." />
      )}
      <Versions wf={wf} compare={compare} onCompare={setCompare} />
      <Section
        title="Latest runs"
        right={<Link href={`/runs?workflowId=${encodeURIComponent(wf.id)}`}>All runs</Link>}
      >
        {runs.isPending ? (
          <Loading what="runs" />
        ) : runs.error ? (
          <ErrorBox error={runs.error} what="runs" />
        ) : runs.data.data.length === 0 ? (
          <Empty title="No runs yet.">
            Trigger one with the form above, or `weft trigger {wf.id}`.
          </Empty>
        ) : (
          <ul className="plain">
            {runs.data.data.map((r) => (
              <li key={r.id}>
                <StatusBadge status={r.status} /> <RunLink id={r.id} /> <Time iso={r.createdAt} />
              </li>
            ))}
          </ul>
        )}
      </Section>
    </div>
  );
}

export function Legend() {
  return (
    <div className="legend" aria-label="Edge kinds">
      <span className="lg lg-success">success</span>
      <span className="lg lg-branch">router branch</span>
      <span className="lg lg-failure">failure</span>
      <span className="lg lg-always">always</span>
      <span className="lg lg-timeout">timeout</span>
    </div>
  );
}

function Versions({
  wf,
  compare,
  onCompare,
}: {
  wf: WorkflowDetail;
  compare: { a: string; b: string } | null;
  onCompare: (c: { a: string; b: string } | null) => void;
}) {
  const versions = wf.versions;
  const [a, setA] = useState(versions[1]?.id ?? versions[0]?.id ?? '');
  const [b, setB] = useState(versions[0]?.id ?? '');
  const hasHashes = versions.some((v) => v.stepHashes);
  const va = versions.find((v) => v.id === compare?.a)?.stepHashes;
  const vb = versions.find((v) => v.id === compare?.b)?.stepHashes;
  const diff = useMemo(() => {
    if (!va || !vb) return null;
    const rows: Array<{ step: string; change: string }> = [];
    for (const s of new Set([...Object.keys(va), ...Object.keys(vb)])) {
      if (!(s in va)) rows.push({ step: s, change: 'added' });
      else if (!(s in vb)) rows.push({ step: s, change: 'removed' });
      else if (va[s] !== vb[s]) rows.push({ step: s, change: 'changed' });
    }
    return rows;
  }, [va, vb]);
  return (
    <Section title={`Versions (${versions.length})`}>
      <table className="table compact">
        <thead>
          <tr>
            <th>Version</th>
            <th>Hash</th>
            <th>Registered</th>
          </tr>
        </thead>
        <tbody>
          {versions.map((v) => (
            <tr key={v.id}>
              <td>v{v.version}</td>
              <td className="mono small">{v.hash.slice(0, 12)}</td>
              <td>
                <Time iso={v.createdAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {versions.length < 2 ? (
        <p className="muted">
          One version so far: changed steps show here once a second version is registered.
        </p>
      ) : !hasHashes ? (
        <p className="muted">
          This server does not report per-step hashes yet, so versions cannot be compared step by
          step.
        </p>
      ) : (
        <div className="row">
          <label>
            From{' '}
            <select
              value={a}
              onChange={(e) => setA(e.target.value)}
              aria-label="Compare from version"
            >
              {versions.map((v) => (
                <option key={v.id} value={v.id}>
                  v{v.version}
                </option>
              ))}
            </select>
          </label>
          <label>
            to{' '}
            <select
              value={b}
              onChange={(e) => setB(e.target.value)}
              aria-label="Compare to version"
            >
              {versions.map((v) => (
                <option key={v.id} value={v.id}>
                  v{v.version}
                </option>
              ))}
            </select>
          </label>
          <button type="button" onClick={() => onCompare({ a, b })}>
            Show changed steps
          </button>
          {compare ? (
            <button type="button" className="ghost" onClick={() => onCompare(null)}>
              Clear
            </button>
          ) : null}
        </div>
      )}
      {diff ? (
        diff.length === 0 ? (
          <p>No step changed between these versions.</p>
        ) : (
          <ul className="plain" data-testid="version-diff">
            {diff.map((d) => (
              <li key={d.step}>
                <span className={`badge changed`}>{d.change}</span> {d.step}
              </li>
            ))}
          </ul>
        )
      ) : null}
    </Section>
  );
}

/**
 * A starting input for a workflow with an input schema: its required fields with an empty value of
 * their type (an enum's first value, a default where there is one), for the person to fill in.
 */
function inputTemplate(schema: JsonSchema | undefined): unknown {
  if (!schema) return {};
  if (schema.default !== undefined) return schema.default;
  if (schema.const !== undefined) return schema.const;
  if (schema.enum && schema.enum.length > 0) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const key of schema.required ?? []) out[key] = inputTemplate(schema.properties?.[key]);
      return out;
    }
    case 'array':
      return [];
    case 'string':
      return '';
    case 'number':
    case 'integer':
      return 0;
    case 'boolean':
      return false;
    case 'null':
      return null;
    default:
      return schema.anyOf?.[0] ? inputTemplate(schema.anyOf[0]) : null;
  }
}

/** "required `email` (string), `name` (string); optional `plan`": what the schema asks for. */
function schemaHint(schema: JsonSchema): string | null {
  if (!schema.properties) return null;
  const required = new Set(schema.required ?? []);
  const describe = (key: string) => {
    const p = schema.properties![key]!;
    const type = p.enum ? p.enum.map((v) => JSON.stringify(v)).join(' | ') : p.type;
    return type ? `\`${key}\` (${Array.isArray(type) ? type.join(' | ') : type})` : `\`${key}\``;
  };
  // `required` keeps the schema's order; the stored properties object may not (jsonb sorts keys)
  const req = (schema.required ?? []).filter((k) => k in schema.properties!).map(describe);
  const opt = Object.keys(schema.properties)
    .filter((k) => !required.has(k))
    .map(describe);
  return [
    req.length ? `required ${req.join(', ')}` : '',
    opt.length ? `optional ${opt.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('; ');
}

function TriggerForm({
  workflowId,
  inputSchema,
}: {
  workflowId: string;
  inputSchema: JsonSchema | undefined;
}) {
  const [input, setInput] = useState(() => JSON.stringify(inputTemplate(inputSchema), null, 2));
  const hint = inputSchema ? schemaHint(inputSchema) : null;
  const [, navigate] = useLocation();
  const parsed = useMemo(() => {
    try {
      return {
        ok: true as const,
        value: input.trim() === '' ? null : (JSON.parse(input) as unknown),
      };
    } catch (e) {
      return { ok: false as const, error: (e as Error).message };
    }
  }, [input]);
  const trigger = useMutation({
    mutationFn: () =>
      api<Run>(`/api/v1/workflows/${encodeURIComponent(workflowId)}/runs`, {
        method: 'POST',
        body: { input: parsed.ok ? parsed.value : null, source: 'dashboard' },
      }),
    onSuccess: (run) => navigate(`/runs/${run.id}`),
  });
  return (
    <form
      className="stack"
      onSubmit={(e) => {
        e.preventDefault();
        if (parsed.ok) trigger.mutate();
      }}
    >
      <h2>Trigger a run</h2>
      <p className="muted">Select a step on the graph to see its settings.</p>
      <label htmlFor="trigger-input">Input (JSON)</label>
      {hint ? (
        <p className="muted small" data-testid="input-schema-hint">
          Checked against the workflow’s input schema: {hint}.
        </p>
      ) : null}
      <textarea
        id="trigger-input"
        rows={8}
        className="mono"
        value={input}
        onChange={(e) => setInput(e.target.value)}
      />
      {!parsed.ok ? <div className="field-error">Not JSON: {parsed.error}</div> : null}
      {trigger.error ? <ErrorBox error={trigger.error} what="the run" /> : null}
      <button type="submit" className="primary" disabled={!parsed.ok || trigger.isPending}>
        {trigger.isPending ? 'Starting…' : 'Start run'}
      </button>
    </form>
  );
}
