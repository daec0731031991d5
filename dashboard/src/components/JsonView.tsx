/**
 * JSON values with react-json-view-lite: collapsible, keyboard navigable, and cheap on large
 * values (deep levels and long arrays start collapsed). The raw value opens as a JSON document in
 * a new tab (a blob URL: the API needs the key in a header, which a plain link cannot send).
 */
import { useQuery } from '@tanstack/react-query';
import {
  allExpanded,
  collapseAllNested,
  defaultStyles,
  JsonView as Viewer,
} from 'react-json-view-lite';
import 'react-json-view-lite/dist/index.css';
import { api, type Dataclip } from '../api';
import { ErrorBox, Loading } from './ui';

const LARGE = 20_000;

export function JsonValue({ value, name }: { value: unknown; name?: string }) {
  if (value === null || typeof value !== 'object') {
    return <pre className="json-scalar">{JSON.stringify(value)}</pre>;
  }
  const size = JSON.stringify(value).length;
  const shouldExpand =
    size > LARGE
      ? collapseAllNested
      : (level: number, v: unknown) =>
          level < 2 ||
          ((Array.isArray(v) ? v.length <= 20 : Object.keys(v as object).length <= 20) &&
            level < 4);
  return (
    <div className="json" aria-label={name ?? 'JSON value'}>
      <Viewer
        data={value as object}
        shouldExpandNode={size < 2000 ? allExpanded : shouldExpand}
        style={defaultStyles}
      />
    </div>
  );
}

export function openRaw(value: unknown): void {
  const blob = new Blob([JSON.stringify(value, null, 2)], { type: 'application/json' });
  window.open(URL.createObjectURL(blob), '_blank', 'noopener');
}

/** A dataclip by id, with its size and a raw link; wiped and missing dataclips say so. */
export function DataclipView({ id, label }: { id: string | null; label: string }) {
  const q = useQuery({
    queryKey: ['dataclip', id],
    queryFn: () => api<Dataclip>(`/api/v1/dataclips/${id}`),
    enabled: !!id,
    staleTime: Infinity,
  });
  if (!id) return <p className="muted">No {label.toLowerCase()} recorded.</p>;
  if (q.isPending) return <Loading what={label.toLowerCase()} />;
  if (q.error) return <ErrorBox error={q.error} what={label.toLowerCase()} />;
  const clip = q.data;
  return (
    <div className="dataclip" data-testid={`dataclip-${label.toLowerCase().replace(/\s+/g, '-')}`}>
      <div className="dataclip-head">
        <span className="muted">
          {label} · {formatBytes(clip.sizeBytes)} · <span className="mono">{clip.id}</span>
        </span>
        <button type="button" className="link" onClick={() => openRaw(clip.body)}>
          Raw JSON
        </button>
      </div>
      {clip.wipedAt ? (
        <p className="muted">
          Wiped on {new Date(clip.wipedAt).toLocaleString()} (retention or the project does not save
          dataclips).
        </p>
      ) : (
        <JsonValue value={clip.body} name={label} />
      )}
    </div>
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
