/**
 * The cache-first resolver's storage: control-plane rows read on the run path (API key →
 * environment, environment / project settings and organization flags, workflow → current
 * version), kept in memory so the run path reads the control plane only on a miss.
 *
 * - **Missing vs not cached**: `peek` answers `{ cached: true, value }` — where `value` may be
 *   `null`, "the row does not exist" (an unknown key is remembered as unknown) — or
 *   `{ cached: false }`, "ask the database". `get` loads on a miss.
 * - **Bounded**: at most `maxEntries`, least recently used dropped first.
 * - **TTL**: an entry older than `ttlMs` is not served (the fallback when invalidation is lost).
 * - **One load per key at a time**: callers that miss while a load of the same key is in flight
 *   wait for that load instead of starting their own. A burst of 1,000 triggers of one workflow
 *   arriving on an empty (or just expired) entry was 1,000 identical control-plane queries (the
 *   fan-out bench: 2,100 version lookups for 4,000 runs, pg_stat_statements); it is now one.
 * - **Invalidation**: `invalidate(key)`, `dropOrganization(org)` (the per-organization epoch:
 *   every entry of that organization goes at once) and `dropAll()`. A load that was in flight
 *   while anything was dropped is returned to the callers that were waiting for it but not kept,
 *   and a caller that arrives after the drop does not join it (it starts a new load), so a row
 *   read before a change can never be cached, or served to a read made after it.
 *
 * Who calls the drops, and how a change on another process arrives before the next request:
 * control-store.ts (`watchChanges`, `syncBeforeServe`).
 */
export type Lookup<V> = { cached: true; value: V } | { cached: false };

interface Entry<V> {
  value: V;
  expires: number;
  /** The organization the row belongs to (undefined: not known, e.g. an unknown key). */
  org: string | undefined;
  orgEpoch: number;
}

export class TtlCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  /** Per-organization epoch: an entry of an organization is valid while its epoch is current. */
  private readonly orgEpochs = new Map<string, number>();
  /** Bumped by every drop: a load that straddles one is not stored. */
  private generation = 0;
  /** Loads in flight by key, with the generation they started in (joined only within it). */
  private readonly loading = new Map<string, { generation: number; promise: Promise<V> }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** What is cached for `key` (a `null` value is a cached "missing"), or `{ cached: false }`. */
  peek(key: string): Lookup<V> {
    const hit = this.entries.get(key);
    if (!hit) return { cached: false };
    if (hit.expires <= Date.now() || !this.current(hit)) {
      this.entries.delete(key);
      return { cached: false };
    }
    // least recently used goes first: a hit moves to the end of the Map's order
    this.entries.delete(key);
    this.entries.set(key, hit);
    return { cached: true, value: hit.value };
  }

  /**
   * The cached value, or `load()`'s. `orgOf` names the organization of a loaded value (for
   * `dropOrganization`); without it the entry is dropped only by `invalidate` / `dropAll`.
   */
  async get(
    key: string,
    load: () => Promise<V>,
    orgOf?: (value: V) => string | undefined,
  ): Promise<V> {
    const seen = this.peek(key);
    if (seen.cached) return seen.value;
    const generation = this.generation;
    const inFlight = this.loading.get(key);
    if (inFlight && inFlight.generation === generation) return inFlight.promise;
    // registered before the load starts: a load that fails at once still removes its entry
    const entry = { generation } as { generation: number; promise: Promise<V> };
    this.loading.set(key, entry);
    entry.promise = (async () => {
      try {
        const value = await load();
        if (generation === this.generation) this.store(key, value, orgOf?.(value));
        return value;
      } finally {
        if (this.loading.get(key) === entry) this.loading.delete(key);
      }
    })();
    return entry.promise;
  }

  invalidate(key: string): void {
    this.generation++;
    this.entries.delete(key);
  }

  /**
   * The per-organization epoch: every entry of `organizationId` is dropped, and every entry of no
   * known organization (a cached "does not exist": a key just created there may be one of them),
   * and loads in flight are not kept. A scan of at most `maxEntries`; such changes are rare.
   */
  dropOrganization(organizationId: string): void {
    this.generation++;
    this.orgEpochs.set(organizationId, (this.orgEpochs.get(organizationId) ?? 0) + 1);
    for (const [key, entry] of this.entries)
      if (entry.org === organizationId || entry.org === undefined) this.entries.delete(key);
  }

  /** Drop every entry (also loads in flight). */
  dropAll(): void {
    this.generation++;
    this.entries.clear();
  }

  private current(entry: Entry<V>): boolean {
    return entry.org === undefined || (this.orgEpochs.get(entry.org) ?? 0) === entry.orgEpoch;
  }

  private store(key: string, value: V, org: string | undefined): void {
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    this.entries.set(key, {
      value,
      expires: Date.now() + this.ttlMs,
      org,
      orgEpoch: org === undefined ? 0 : (this.orgEpochs.get(org) ?? 0),
    });
  }
}
