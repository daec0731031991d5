/**
 * What every run system shares: the run locations, routing by an id's location tag, and the
 * post-commit wake-ups (signals). One instance per process, built by the RunStore facade and handed
 * to each system (run creation, lineage, queue, waitpoints, lifecycle, queries, events).
 *
 * Routing (docs/scale.md): a run-scoped id names its location tag, so any read or write by id touches
 * exactly one location with no lookup. A well-formed id with an unknown tag goes to the default
 * (legacy) location; a malformed id is "not found". Reads by predicate (list) ask every location
 * and merge.
 */
import { WeftError } from '../../core/errors.js';
import { parseRunScopedId } from '../../core/ids.js';
import { ENDED_RUN_STATUSES } from '../../core/statuses.js';
import type { Executor } from '../executor.js';
import { quoteIdent } from '../migrator.js';
import { Signals } from '../signals.js';
import { CHANNELS } from '../channels.js';

export interface RunLocation {
  tag: string;
  db: Executor;
  /** Schema holding this location's run tables. */
  schema: string;
  /** Schema holding the run-ops database's idempotency keys. */
  opsSchema: string;
}

const ENDED_OR_PAUSED = new Set<string>([...ENDED_RUN_STATUSES, 'paused']);

export class RunResources {
  readonly locations: ReadonlyMap<string, RunLocation>;
  readonly defaultTag: string;
  /**
   * The home run-ops database and its ops schema: where a trigger claims its idempotency key
   * (`pending`, with a TTL) before creating a run in a location of another database (SCALE.md).
   * Default: the default location's database.
   */
  readonly home: { db: Executor; opsSchema: string };
  /** Post-commit wake-ups (ready work, ended runs), coalesced per tick. */
  readonly signals = new Signals();

  constructor(
    locations: RunLocation[],
    defaultTag: string,
    home?: { db: Executor; opsSchema: string },
  ) {
    if (locations.length === 0)
      throw new WeftError('invalid_config', 'at least one run location is required');
    for (const l of locations) {
      quoteIdent(l.schema);
      quoteIdent(l.opsSchema);
    }
    this.locations = new Map(locations.map((l) => [l.tag, l]));
    if (!this.locations.has(defaultTag)) {
      throw new WeftError(
        'invalid_config',
        `default run location "${defaultTag}" is not among the configured locations (${[...this.locations.keys()].join(', ')})`,
      );
    }
    this.defaultTag = defaultTag;
    const fallback = this.locations.get(defaultTag)!;
    this.home = home ?? { db: fallback.db, opsSchema: fallback.opsSchema };
  }

  /** Several run-ops databases hold locations (idempotency then claims in the home one first). */
  get spansDatabases(): boolean {
    for (const l of this.locations.values()) if (l.db !== this.home.db) return true;
    return false;
  }

  /** The location an id routes to, or undefined for a malformed id. O(1), no query. */
  locationOf(id: string): RunLocation | undefined {
    const parsed = parseRunScopedId(id);
    if (!parsed) return undefined;
    return this.locations.get(parsed.tag) ?? this.locations.get(this.defaultTag);
  }

  /** The location a new run goes to: `tag`, or the default location when omitted. */
  location(tag: string | undefined): RunLocation {
    const loc = this.locations.get(tag ?? this.defaultTag);
    if (!loc) throw new WeftError('invalid_config', `run location "${tag}" is not configured`);
    return loc;
  }

  /** Ids grouped by the location they route to; malformed ids are dropped. */
  groupByLocation(ids: readonly string[]): Map<RunLocation, string[]> {
    const byLoc = new Map<RunLocation, string[]>();
    for (const id of ids) {
      const loc = this.locationOf(id);
      if (loc) byLoc.set(loc, [...(byLoc.get(loc) ?? []), id]);
    }
    return byLoc;
  }

  /** Tell the run observer (run waits, event streams) that a run ended or paused; after its commit. */
  signalRunEnd(runId: string, runStatus: string | undefined): void {
    if (runStatus === undefined || !ENDED_OR_PAUSED.has(runStatus)) return;
    const loc = this.locationOf(runId);
    if (loc) this.signals.send(loc.db, CHANNELS.runEnded, runId);
    // A child run's end wakes its parent in SQL when both share a location (finish_run); with
    // several locations the parent may be in another one, which that SQL cannot reach.
    if (this.locations.size > 1 && runStatus !== 'paused') this.onRunEnded?.(runId);
  }

  /** Set by RunWaitpoints: wake a parent in another location (see signalRunEnd). */
  onRunEnded: ((runId: string) => void) | undefined;

  /**
   * Wake workers of the environments a location function made work ready in: the `wake` list of
   * its result (src/store/sql/location/wake.sql), sent after the commit, never inside it.
   */
  signalWoken(loc: RunLocation, result: unknown): void {
    const wake = (result as { wake?: unknown } | null)?.wake;
    if (!Array.isArray(wake)) return;
    for (const env of wake)
      if (typeof env === 'string') this.signals.send(loc.db, CHANNELS.ready, env);
  }
}
