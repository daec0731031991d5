/**
 * Run locations: which run tables live in which run-ops database (docs/scale.md, docs/operations.md).
 *
 * A process learns its locations from the environment only — `weft migrate`, `weft server`,
 * `weft worker`, `weft dev` and `weft replicate` must all see the same set, and only the
 * environment reaches every one of them (`weft.config.ts` is loaded by workers alone):
 *
 * - `WEFT_LOCATIONS`: comma-separated `tag` or `tag=url`, e.g. `a0,b1=postgres://h2/ops2`. A tag
 *   without a URL lives in the home run-ops database (`RUN_OPS_DATABASE_URL`, else `DATABASE_URL`).
 *   Unset: one location, `a0`, in the home database (the default, no extra cost).
 * - `WEFT_DEFAULT_LOCATION`: where runs of organizations without a `runs.location` flag are
 *   minted, and where ids of an unknown tag route. Default: the first tag.
 *
 * Parsing is pure (no I/O) so a bad setting fails before any connection is opened.
 */
import { WeftError } from '../core/errors.js';
import type { Executor } from './executor.js';

export const DEFAULT_LOCATION_TAG = 'a0';
const TAG = /^[0-9a-z]{2}$/;

export interface LocationSpec {
  tag: string;
  /** The run-ops database of this location; undefined = the home run-ops database. */
  url: string | undefined;
  isDefault: boolean;
}

/** One configured location as a process sees it (what `stores.listLocations()` returns). */
export interface LocationInfo {
  tag: string;
  /** The URL it was configured with; undefined when it lives in the home run-ops database. */
  url: string | undefined;
  /** Schema of its run tables, `<prefix>_loc_<tag>`. */
  schema: string;
  /** Schema of the ops tables (idempotency keys) in the same database. */
  opsSchema: string;
  executor: Executor;
  isDefault: boolean;
  /** It lives in the home run-ops database (where cross-database idempotency claims are kept). */
  home: boolean;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/**
 * The locations `WEFT_LOCATIONS` / `WEFT_DEFAULT_LOCATION` configure. Throws `invalid_config`
 * naming the setting, the entry and the fix for a bad tag, a duplicate tag, a URL that is not
 * PostgreSQL, or a default that is not listed.
 */
export function parseLocationsEnv(
  env: Record<string, string | undefined> = process.env,
): LocationSpec[] {
  const raw = env.WEFT_LOCATIONS?.trim();
  const specs: Array<{ tag: string; url: string | undefined }> = [];
  if (!raw) {
    specs.push({ tag: DEFAULT_LOCATION_TAG, url: undefined });
  } else {
    for (const entry of raw.split(',').map((e) => e.trim())) {
      if (entry === '') continue;
      const eq = entry.indexOf('=');
      const tag = (eq < 0 ? entry : entry.slice(0, eq)).trim();
      const url = eq < 0 ? undefined : entry.slice(eq + 1).trim();
      if (!TAG.test(tag)) {
        throw new WeftError(
          'invalid_config',
          `WEFT_LOCATIONS: "${tag}" (in entry "${eq < 0 ? entry : `${tag}=…`}") is not a location tag: expected 2 characters of [0-9a-z], e.g. "a0" or "b1". Fix the entry, e.g. WEFT_LOCATIONS="a0,b1=postgres://host/ops2".`,
        );
      }
      if (specs.some((s) => s.tag === tag)) {
        throw new WeftError(
          'invalid_config',
          `WEFT_LOCATIONS names location "${tag}" twice; each tag is one set of run tables. Remove the duplicate entry.`,
        );
      }
      if (url !== undefined && !/^postgres(ql)?:\/\/./.test(url)) {
        throw new WeftError(
          'invalid_config',
          `WEFT_LOCATIONS: location "${tag}" has URL "${redact(url)}", which is not a PostgreSQL URL: expected postgres://user:password@host:5432/database, or no "=url" to keep the location in the run-ops database (RUN_OPS_DATABASE_URL, else DATABASE_URL).`,
        );
      }
      specs.push({ tag, url: url || undefined });
    }
    if (specs.length === 0) {
      throw new WeftError(
        'invalid_config',
        `WEFT_LOCATIONS is set but names no location ("${raw}"). Set it to e.g. "a0" or "a0,b1=postgres://host/ops2", or unset it for the single default location a0.`,
      );
    }
  }
  const wanted = env.WEFT_DEFAULT_LOCATION?.trim() || specs[0]!.tag;
  if (!specs.some((s) => s.tag === wanted)) {
    throw new WeftError(
      'invalid_config',
      `WEFT_DEFAULT_LOCATION is "${wanted}", which WEFT_LOCATIONS does not list (${specs.map((s) => s.tag).join(', ')}). Add it to WEFT_LOCATIONS or pick one of those.`,
    );
  }
  return specs.map((s) => ({ ...s, isDefault: s.tag === wanted }));
}
