/** Small shared pieces: status badges, times, durations, and the loading / empty / error states. */
import { useEffect, useState, type ReactNode } from 'react';
import { Link } from 'wouter';
import { ApiError } from '../api';

export function StatusBadge({ status }: { status: string }) {
  return (
    <span className={`badge st-${status}`} data-testid="status">
      {status}
    </span>
  );
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "3 minutes ago" / "in 2 hours", from a timestamp. */
export function relative(iso: string, now = Date.now()): string {
  const diff = (Date.parse(iso) - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return rtf.format(Math.round(diff), 'second');
  if (abs < 2700) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 64800) return rtf.format(Math.round(diff / 3600), 'hour');
  return rtf.format(Math.round(diff / 86400), 'day');
}

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span className="muted">—</span>;
  return (
    <time dateTime={iso} title={new Date(iso).toLocaleString()}>
      {relative(iso)}
    </time>
  );
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  if (m < 60) return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Re-render every `ms` while enabled (running durations, "3 seconds ago"). */
export function useTick(enabled: boolean, ms = 1000): void {
  const [, set] = useState(0);
  useEffect(() => {
    if (!enabled) return;
    const t = setInterval(() => set((n) => n + 1), ms);
    return () => clearInterval(t);
  }, [enabled, ms]);
}

export function Duration({ from, to }: { from: string | null; to: string | null }) {
  useTick(!!from && !to);
  if (!from) return <span className="muted">—</span>;
  const end = to ? Date.parse(to) : Date.now();
  return <span>{formatDuration(end - Date.parse(from))}</span>;
}

export function Loading({ what }: { what: string }) {
  return (
    <div className="state-box" role="status" aria-live="polite">
      <span className="spinner" aria-hidden /> Loading {what}…
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state-box empty">
      <strong>{title}</strong>
      {children ? <div className="muted">{children}</div> : null}
    </div>
  );
}

export function ErrorBox({ error, what }: { error: unknown; what?: string }) {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof ApiError ? error.code : null;
  return (
    <div className="error-box" role="alert">
      <strong>{what ? `Could not load ${what}` : 'Something went wrong'}</strong>
      {code ? <code className="code">{code}</code> : null}
      <div>{message}</div>
    </div>
  );
}

export function RunLink({ id }: { id: string }) {
  return (
    <Link href={`/runs/${id}`} className="mono">
      {id}
    </Link>
  );
}

export function Section({
  title,
  children,
  right,
}: {
  title: string;
  children: ReactNode;
  right?: ReactNode;
}) {
  return (
    <section className="section">
      <div className="section-head">
        <h2>{title}</h2>
        {right}
      </div>
      {children}
    </section>
  );
}
