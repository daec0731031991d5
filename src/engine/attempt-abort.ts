/**
 * How an attempt is abandoned while its code runs: its lease is lost, its run is canceled, the
 * worker shuts down past its grace, or the step's `timeout` passes. The first reason wins; the
 * executor stops waiting for the code at once (`race`), and the commit that follows is fenced
 * anyway.
 *
 * The AbortSignal that step code sees as `ctx.signal` is made only when the code reads it: an
 * AbortController per attempt, with a listener on its signal for the race, cost ~15 µs of a
 * chained step's client CPU on a 2-core machine (~2 % of the step; bench/RESULTS.md, "Issue 8,
 * session 11"). A signal made after the abort is made aborted, with the same reason.
 */
export class AttemptAbort {
  private controller: AbortController | undefined;
  private onAbort: ((reason: unknown) => void) | undefined;
  private abortReason: unknown;
  private isAborted = false;

  get aborted(): boolean {
    return this.isAborted;
  }

  /** The reason given to the first `abort`; undefined until then. */
  get reason(): unknown {
    return this.abortReason;
  }

  /** `ctx.signal`: aborted with the same reason as the attempt. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.isAborted) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /** Abandon the attempt; a second call changes nothing. */
  abort(reason: Error): void {
    if (this.isAborted) return;
    this.isAborted = true;
    this.abortReason = reason;
    this.controller?.abort(reason);
    this.onAbort?.(reason);
  }

  /** Settle with the promise, or reject with the reason as soon as the attempt is aborted. */
  race<T>(promise: Promise<T>): Promise<T> {
    if (this.isAborted) return Promise.reject(this.abortReason as Error);
    return new Promise<T>((resolve, reject) => {
      this.onAbort = reject;
      promise.then(
        (value) => {
          this.onAbort = undefined;
          resolve(value);
        },
        (error: unknown) => {
          this.onAbort = undefined;
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }
}
