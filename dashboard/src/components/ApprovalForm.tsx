/**
 * Completing an approval: a form generated from the payload's JSON Schema (objects of booleans,
 * numbers, strings and enums, with required fields), or a JSON editor when the schema is more
 * than that or absent. The server checks the payload against the schema again (422 on mismatch).
 */
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { api, type Waitpoint } from '../api';
import { ErrorBox } from './ui';

interface FieldSchema {
  type?: string | string[];
  enum?: unknown[];
  description?: string;
  title?: string;
  default?: unknown;
}

type Field = {
  name: string;
  schema: FieldSchema;
  required: boolean;
  kind: 'boolean' | 'number' | 'integer' | 'string' | 'enum';
};

function simpleFields(schema: Record<string, unknown> | null): Field[] | null {
  if (
    !schema ||
    schema.type !== 'object' ||
    typeof schema.properties !== 'object' ||
    !schema.properties
  )
    return null;
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  const fields: Field[] = [];
  for (const [name, raw] of Object.entries(schema.properties as Record<string, FieldSchema>)) {
    const type = Array.isArray(raw.type) ? raw.type.find((t) => t !== 'null') : raw.type;
    if (Array.isArray(raw.enum))
      fields.push({ name, schema: raw, required: required.has(name), kind: 'enum' });
    else if (type === 'boolean' || type === 'number' || type === 'integer' || type === 'string')
      fields.push({ name, schema: raw, required: required.has(name), kind: type });
    else return null;
  }
  return fields;
}

export function ApprovalForm({ waitpoint, onDone }: { waitpoint: Waitpoint; onDone?: () => void }) {
  const fields = useMemo(() => simpleFields(waitpoint.payloadSchema), [waitpoint.payloadSchema]);
  const [values, setValues] = useState<Record<string, unknown>>(() =>
    Object.fromEntries(
      (fields ?? []).map((f) => [f.name, f.schema.default ?? (f.kind === 'boolean' ? false : '')]),
    ),
  );
  const [json, setJson] = useState('{}');
  const qc = useQueryClient();

  const payload = (): unknown => {
    if (!fields) return JSON.parse(json) as unknown;
    const out: Record<string, unknown> = {};
    for (const f of fields) {
      const v = values[f.name];
      if (v === '' || v === undefined) {
        if (f.required) throw new Error(`"${f.name}" is required.`);
        continue;
      }
      out[f.name] = f.kind === 'number' || f.kind === 'integer' ? Number(v) : v;
    }
    return out;
  };
  const [localError, setLocalError] = useState<string | null>(null);
  const complete = useMutation({
    mutationFn: (body: unknown) =>
      api<Waitpoint>(`/api/v1/waitpoints/${waitpoint.token}/complete`, {
        method: 'POST',
        body: { payload: body },
      }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ['waitpoints'] });
      void qc.invalidateQueries({ queryKey: ['waiting'] });
      onDone?.();
    },
  });

  return (
    <form
      className="approval-form stack"
      data-testid={`approval-${waitpoint.stepKey}`}
      onSubmit={(e) => {
        e.preventDefault();
        setLocalError(null);
        try {
          complete.mutate(payload());
        } catch (err) {
          setLocalError((err as Error).message);
        }
      }}
    >
      {fields ? (
        fields.map((f) => {
          const id = `${waitpoint.token}-${f.name}`;
          const label = `${f.schema.title ?? f.name}${f.required ? ' *' : ''}`;
          if (f.kind === 'boolean')
            return (
              <label key={f.name} className="check" htmlFor={id}>
                <input
                  id={id}
                  type="checkbox"
                  checked={values[f.name] === true}
                  onChange={(e) => setValues({ ...values, [f.name]: e.target.checked })}
                />
                {label}
                {f.schema.description ? (
                  <span className="muted small"> — {f.schema.description}</span>
                ) : null}
              </label>
            );
          if (f.kind === 'enum')
            return (
              <label key={f.name} htmlFor={id}>
                {label}
                <select
                  id={id}
                  value={String(values[f.name] ?? '')}
                  onChange={(e) =>
                    setValues({
                      ...values,
                      [f.name]: f.schema.enum!.find((x) => String(x) === e.target.value),
                    })
                  }
                >
                  <option value="">—</option>
                  {f.schema.enum!.map((x) => (
                    <option key={String(x)} value={String(x)}>
                      {String(x)}
                    </option>
                  ))}
                </select>
              </label>
            );
          return (
            <label key={f.name} htmlFor={id}>
              {label}
              <input
                id={id}
                type={f.kind === 'string' ? 'text' : 'number'}
                value={String(values[f.name] ?? '')}
                onChange={(e) => setValues({ ...values, [f.name]: e.target.value })}
              />
            </label>
          );
        })
      ) : (
        <label>
          Payload (JSON{waitpoint.payloadSchema ? ', checked against the schema below' : ''})
          <textarea
            className="mono"
            rows={5}
            value={json}
            onChange={(e) => setJson(e.target.value)}
          />
        </label>
      )}
      {!fields && waitpoint.payloadSchema ? (
        <pre className="code-block small">{JSON.stringify(waitpoint.payloadSchema, null, 2)}</pre>
      ) : null}
      {localError ? <div className="field-error">{localError}</div> : null}
      {complete.error ? <ErrorBox error={complete.error} what="" /> : null}
      {complete.isSuccess ? (
        <div className="ok-box">Completed. The step continues with this payload.</div>
      ) : (
        <button type="submit" className="primary" disabled={complete.isPending}>
          {complete.isPending ? 'Completing…' : 'Complete approval'}
        </button>
      )}
    </form>
  );
}
