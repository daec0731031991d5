/**
 * Cutover: moving where an organization's new runs are minted, without a backfill (docs/scale.md,
 * docs/operations.md "Cut an organization over and back").
 *
 * Two organization flags, written together in one statement:
 * - `runs.location`: the tag new runs are minted into (absent = the default location). Read from
 *   memory at the one mint site (trigger.ts reads the cached environment row, which carries the
 *   flags); the write fires `weft_control_changed`, which drops every process's cached rows, so
 *   the next trigger anywhere mints into the new location.
 * - `runs.locations`: every location the organization has ever minted into. Listing reads only
 *   those (an organization never cut over reads its one location). Written before any run can be
 *   minted into the new location, so a listing never misses one.
 */
import { WeftError } from '../core/errors.js';
import type { ControlStore } from '../store/control-store.js';
import type { RunStore } from '../store/run-store.js';

export const LOCATION_FLAG = 'runs.location';
export const LOCATION_HISTORY_FLAG = 'runs.locations';

export interface CutoverResult {
  organizationId: string;
  /** Where new runs go from now on. */
  location: string;
  previous: string;
  /** Every location the organization's runs may be in (what listing reads). */
  locations: string[];
}

/** The tag new runs of an organization with these flags are minted into. */
export function mintLocation(flags: Record<string, unknown>, runs: RunStore): string {
  const flagged = flags[LOCATION_FLAG];
  return typeof flagged === 'string' && runs.locations.has(flagged) ? flagged : runs.defaultTag;
}

/**
 * The locations a listing of an organization's runs must read: those it ever minted into (that
 * this process knows; an unknown tag's ids route to the default, so it is read then). Without a
 * recorded history: the default alone when never flagged, every location when flagged by an
 * older build that kept no history.
 */
export function readLocations(flags: Record<string, unknown>, runs: RunStore): string[] {
  const history = flags[LOCATION_HISTORY_FLAG];
  if (Array.isArray(history)) {
    const tags = new Set<string>();
    for (const tag of history)
      if (typeof tag === 'string') tags.add(runs.locations.has(tag) ? tag : runs.defaultTag);
    if (tags.size > 0) return [...tags];
  }
  if (flags[LOCATION_FLAG] === undefined || flags[LOCATION_FLAG] === null) return [runs.defaultTag];
  return [...runs.locations.keys()];
}

/**
 * Send an organization's new runs to `location` (null: back to the default). Existing runs stay
 * where they are. One statement on the control plane (it NOTIFYs every process).
 */
export async function cutoverOrganization(
  stores: { control: ControlStore; runs: RunStore },
  organizationId: string,
  location: string | null,
): Promise<CutoverResult> {
  const known = [...stores.runs.locations.keys()];
  if (location !== null && !stores.runs.locations.has(location)) {
    throw new WeftError(
      'invalid_input',
      `"${location}" is not a run location of this installation; it has ${known.map((k) => `"${k}"`).join(', ')} (WEFT_LOCATIONS). Add the location first (docs/operations.md, "Add a location"), or pick one of those.`,
      { details: { field: 'location', known } },
    );
  }
  const org = await stores.control.getOrganization(organizationId);
  if (!org) {
    throw new WeftError('not_found', `organization ${organizationId} does not exist`, {
      details: { organizationId },
    });
  }
  const previous = mintLocation(org.flags, stores.runs);
  const target = location ?? stores.runs.defaultTag;
  const history = new Set(readLocations(org.flags, stores.runs));
  history.add(previous);
  history.add(target);
  const locations = [...history].sort();
  await stores.control.updateOrganizationFlags(organizationId, {
    [LOCATION_FLAG]: location,
    [LOCATION_HISTORY_FLAG]: locations,
  });
  return { organizationId, location: target, previous, locations };
}
