/**
 * Cron slot math for schedules (pure: no IO, no clock — every function takes the instants it
 * needs). croner parses the expression and enumerates matching *wall-clock* times; this module
 * maps wall-clock times to instants in an IANA time zone with one documented DST rule.
 *
 * A *slot* is the instant a schedule fires for one match of its cron expression. Slots are
 * identified by their ISO string (UTC), which is also the run's idempotency key suffix.
 *
 * DST rule (wall-clock semantics, like a person reading the clock on the wall):
 * - **Skipped hour** (spring forward): a match whose wall-clock time does not exist fires once at
 *   the next valid instant — the transition itself (Europe/London 2026-03-29 01:30 → 01:00 UTC,
 *   which reads 02:00 BST). Several matches in the gap (`*\/15`) collapse into that one slot.
 * - **Repeated hour** (fall back): a match whose wall-clock time occurs twice fires once, on its
 *   first occurrence (Europe/London 2026-10-25 01:30 → 00:30 UTC, BST). The second pass through
 *   the hour fires nothing, so an hourly schedule sees one fewer slot that night.
 * Instants are never fired twice and slots are strictly increasing.
 */
import { Cron } from 'croner';
import { WeftError } from './errors.js';

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** Largest DST shift handled when looking back for wall-clock matches (Lord Howe is 30 min). */
const MAX_SHIFT_MS = 3 * 3_600_000;

export interface CronSpec {
  cron: string;
  timezone: string;
}

/** A validated schedule expression; `next` and `latest` find slots in O(1) croner steps. */
export interface CronSchedule extends CronSpec {
  /** The first slot strictly after `after`, or null when the expression never matches again. */
  next(after: Date): Date | null;
  /** The last slot at or before `atOrBefore`, or null when there is none. */
  latest(atOrBefore: Date): Date | null;
}

/**
 * Validate an IANA time zone name. Throws `invalid_input` naming the zone and the fix.
 */
export function assertTimeZone(timezone: string, where = 'schedule'): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    if (timezone.trim() === '') throw new Error('empty');
  } catch {
    throw new WeftError(
      'invalid_input',
      `The timezone of ${where} is "${timezone}", which is not an IANA time zone. Use a name like "UTC", "Europe/London" or "America/New_York".`,
      { details: { field: 'timezone', timezone } },
    );
  }
}

/**
 * Parse a cron expression (5 fields, or 6 with seconds first) in a time zone. Throws
 * `invalid_input` with croner's reason and the expected shape.
 *
 * @example
 * const s = parseCron({ cron: '0 9 * * 1-5', timezone: 'Europe/London' });
 * s.next(new Date('2026-03-27T12:00:00Z')); // 2026-03-30T08:00:00.000Z (09:00 BST on Monday)
 */
export function parseCron(spec: CronSpec, where = 'schedule'): CronSchedule {
  assertTimeZone(spec.timezone, where);
  const fields = spec.cron.trim().split(/\s+/);
  let matcher: Cron;
  try {
    if (fields.length < 5 || fields.length > 6) {
      throw new Error(
        `found ${fields.length === 1 && fields[0] === '' ? 0 : fields.length} fields`,
      );
    }
    // Wall-clock matches: croner evaluates the pattern in UTC, and the instants below are
    // "wall-clock time written as if it were UTC".
    matcher = new Cron(spec.cron, { timezone: 'Etc/UTC', paused: true });
  } catch (error) {
    throw new WeftError(
      'invalid_input',
      `The cron expression of ${where} is "${spec.cron}", which does not parse (${(error as Error).message.replace(/^CronPattern: /, '')}). Expected 5 fields "minute hour day-of-month month day-of-week" (or 6 with seconds first), e.g. "0 9 * * 1-5".`,
      { details: { field: 'cron', cron: spec.cron } },
    );
  }
  const timezone = spec.timezone;
  return {
    cron: spec.cron,
    timezone,
    next(after: Date): Date | null {
      // Wall time → instant is non-decreasing (first occurrence, gaps to the change), and every
      // wall time read on the clock up to `after` maps to an instant ≤ `after`. So the answer is
      // the first match after the latest reading so far: one croner step, one mapping. (It used
      // to start 3 h back and step through every match: ~10,800 steps per call for a per-second
      // expression, half a second of blocked event loop per slot.)
      const afterMs = after.getTime();
      let cursor = latestWallReading(afterMs, timezone);
      // The first candidate is the answer by the argument above; the loop only guards it.
      for (let i = 0; i < 16; i++) {
        const wall = matcher.nextRun(new Date(cursor));
        if (!wall) return null;
        const instant = instantOfWallTime(wall.getTime(), timezone);
        if (instant > afterMs) return new Date(instant);
        cursor = wall.getTime();
      }
      return null;
    },
    latest(atOrBefore: Date): Date | null {
      // Symmetric to `next`: the last match not after the latest reading so far. croner's
      // `previousRuns` is inclusive of the second it is given when that has milliseconds.
      const reading = latestWallReading(atOrBefore.getTime(), timezone);
      const ref = Math.floor(reading / 1000) * 1000 + 500;
      const [wall] = matcher.previousRuns(1, new Date(ref));
      return wall ? new Date(instantOfWallTime(wall.getTime(), timezone)) : null;
    },
  };
}

/**
 * The latest `limit` slots in `[notBefore, until]`, oldest first, found backwards from `until`
 * (so a per-second schedule a day behind costs `limit` steps, not 86,400).
 */
export function latestSlots(
  schedule: CronSchedule,
  notBefore: Date,
  until: Date,
  limit: number,
): Date[] {
  const slots: Date[] = [];
  let cursor = until;
  while (slots.length < limit) {
    const slot = schedule.latest(cursor);
    if (!slot || slot < notBefore) break;
    slots.push(slot);
    cursor = new Date(slot.getTime() - 1);
  }
  return slots.reverse();
}

/** Up to `limit` slots in `(after, until]`, oldest first. */
export function slotsBetween(
  schedule: CronSchedule,
  after: Date,
  until: Date,
  limit: number,
): Date[] {
  const slots: Date[] = [];
  let cursor = after;
  while (slots.length < limit) {
    const slot = schedule.next(cursor);
    if (!slot || slot > until) break;
    slots.push(slot);
    cursor = slot;
  }
  return slots;
}

/** The ISO string that identifies a slot (and ends the run's idempotency key). */
export function slotKey(scheduleId: string, slot: Date): string {
  return `schedule:${scheduleId}:${slot.toISOString()}`;
}

// ── time zone arithmetic ──────────────────────────────────────────────────────────────────────

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timezone, f);
  }
  return f;
}

/** The UTC offset (ms, east positive) of `timezone` at an instant. */
export function offsetAt(instantMs: number, timezone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(timezone).formatToParts(new Date(instantMs))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  const asUtc = Date.UTC(
    parts.year!,
    parts.month! - 1,
    parts.day!,
    parts.hour!,
    parts.minute!,
    parts.second!,
  );
  return asUtc - Math.floor(instantMs / 1000) * 1000;
}

/**
 * The latest wall-clock reading up to an instant (ms, written as a UTC timestamp): the reading at
 * the instant, unless the clock fell back within the last few hours and read later before that.
 */
export function latestWallReading(instantMs: number, timezone: string): number {
  const offset = offsetAt(instantMs, timezone);
  const reading = instantMs + offset;
  const earlier = offsetAt(instantMs - MAX_SHIFT_MS, timezone);
  if (earlier <= offset) return reading; // no fall back in the window: readings only rose
  const change = firstInstantOnNewOffset(instantMs - MAX_SHIFT_MS, instantMs, timezone, 1000);
  return Math.max(reading, change - 1 + earlier);
}

/**
 * The first instant (to `resolutionMs`) in `(lo, hi]` whose offset differs from the offset at
 * `lo`; the offset at `hi` must differ. Bisection: about 14 offset reads for 3 hours to the second.
 */
function firstInstantOnNewOffset(
  lo: number,
  hi: number,
  timezone: string,
  resolutionMs: number,
): number {
  // on the grid of whole resolution units, where offsets change (to the second in practice)
  lo = Math.floor(lo / resolutionMs) * resolutionMs;
  const old = offsetAt(lo, timezone);
  while (hi - lo > resolutionMs) {
    const mid =
      lo + Math.max(resolutionMs, Math.floor((hi - lo) / 2 / resolutionMs) * resolutionMs);
    if (offsetAt(mid, timezone) === old) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The wall-clock time at an instant, written as a UTC timestamp. */
export function wallTimeOf(instant: Date, timezone: string): number {
  return instant.getTime() + offsetAt(instant.getTime(), timezone);
}

/**
 * The instant of a wall-clock time (written as a UTC timestamp) in `timezone`, by the DST rule:
 * an ambiguous time takes its first occurrence, a skipped time the next valid instant.
 */
export function instantOfWallTime(wallMs: number, timezone: string): number {
  const before = offsetAt(wallMs - DAY_MS, timezone);
  const after = offsetAt(wallMs + DAY_MS, timezone);
  const valid = [wallMs - before, wallMs - after].filter(
    (t) => offsetAt(t, timezone) === wallMs - t,
  );
  if (valid.length > 0) return Math.min(...valid);
  // In a gap: the offset changes from `before` to `after` between these two instants (the first
  // still on the earlier offset); the next valid instant is the transition, found to the minute.
  return firstInstantOnNewOffset(wallMs - after, wallMs - before, timezone, MINUTE_MS);
}
