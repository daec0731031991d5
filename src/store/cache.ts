/**
 * Cache-first resolver for control-plane rows read on the run path (API key → environment,
 * environment settings, workflow → current version). Entries live for `ttlMs`; every write that
 * changes a row calls `invalidate` (or bumps the epoch to drop everything at once), so a process
 * sees its own writes immediately and other processes' writes within the TTL.
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number; epoch: number }>();
  private epoch = 0;
  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && hit.expires > Date.now() && hit.epoch === this.epoch) return hit.value;
    const epoch = this.epoch;
    const value = await load();
    if (epoch === this.epoch) {
      if (this.entries.size >= this.maxEntries) this.entries.clear();
      this.entries.set(key, { value, expires: Date.now() + this.ttlMs, epoch });
    }
    return value;
  }

  invalidate(key: string): void {
    this.entries.delete(key);
  }

  /** Drop every entry (also loads in flight). */
  bumpEpoch(): void {
    this.epoch++;
    this.entries.clear();
  }
}
