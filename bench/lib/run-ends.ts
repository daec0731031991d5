/**
 * Which Weft runs have ended, learned from the run-ended NOTIFY the store sends right after a
 * run's final commit (`CHANNELS.runEnded`, payload the run id), so a bench's timer stops when the
 * end is committed and visible, with no query of its own. O(1) per notification: `waitFor`
 * keeps the ids still pending in a set. If announcements stall for 2 s (a LISTEN connection
 * dropped and a notification was lost) it asks `ended` which of the missing runs have ended, so
 * a lost NOTIFY costs time, never a hang.
 *
 * Used by the main bench (bench/systems/weft.ts) and bench/growth.ts. Growth's earlier wait, a
 * count of the open runs among all the ids every 20 ms, cost 34 ms and 4,759 buffers per poll in
 * its 100,000-run fan-out, 27 s of the server's CPU charged to Weft (bench/RESULTS.md, session 10).
 */
import { CHANNELS } from '../../src/store/channels.js';
import type { Stores } from '../../src/index.js';

/** Which of `ids` have ended, asked of the database when notifications stall. */
export type EndedLookup = (ids: string[]) => Promise<Iterable<string>>;

export class RunEnds {
  /** Announced and not yet consumed by a `waitFor` (a run may end before its id is known). */
  private readonly ended = new Set<string>();
  private pending = new Set<string>();
  private progress: (() => void) | undefined;

  private constructor(private readonly unlisten: () => Promise<void>) {}

  static async listen(stores: Stores): Promise<RunEnds> {
    const early: { ends?: RunEnds; ids: string[] } = { ids: [] };
    const unlisten = await stores.runOpsDb.listen(CHANNELS.runEnded, (runId) => {
      if (early.ends) early.ends.announce(runId);
      else early.ids.push(runId);
    });
    const ends = new RunEnds(unlisten);
    early.ends = ends;
    for (const id of early.ids) ends.announce(id);
    return ends;
  }

  private announce(runId: string): void {
    this.ended.add(runId);
    if (this.pending.delete(runId) && this.pending.size === 0) this.progress?.();
  }

  /** Resolves once every id has ended; throws after `timeoutMs` without progress. */
  async waitFor(ids: readonly string[], ended: EndedLookup, timeoutMs = 120_000): Promise<void> {
    this.pending = new Set(ids.filter((id) => !this.ended.has(id)));
    let deadline = Date.now() + timeoutMs;
    while (this.pending.size > 0) {
      const before = this.pending.size;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        this.progress = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.progress = undefined;
      if (this.pending.size < before) {
        deadline = Date.now() + timeoutMs;
        continue;
      }
      if (this.pending.size === 0) break;
      for (const id of await ended([...this.pending])) this.announce(id);
      if (this.pending.size === before && Date.now() > deadline)
        throw new Error(`weft: ${this.pending.size} runs did not end within ${timeoutMs} ms`);
    }
    for (const id of ids) this.ended.delete(id);
  }

  close(): Promise<void> {
    return this.unlisten();
  }
}
