/**
 * A limit on the requests handled at once, with a queue for the rest.
 *
 * A waiting request has not been handed to Connect yet, so nothing reads its
 * body: HTTP/2 flow control (or TCP's, for HTTP/1.1) holds the client's
 * further bytes, and the request costs the server its stream and no more.
 * What many concurrent callers cost in memory then follows what is being
 * handled, not what was sent. The queue is first come, first served; a
 * request whose client gives up while it waits leaves the queue.
 */
export class Admission {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`the limit of concurrent requests must be a positive integer, got ${limit}`);
  }

  /** Requests being handled now. */
  get active(): number {
    return this.running;
  }

  /** Requests waiting for a turn. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Runs `start` now if a turn is free, else when one is. `start` gets the
   * function that gives the turn back; it must call it exactly once. `cancel`
   * registers the function that takes a request out of the queue (when its
   * client goes away before its turn).
   */
  enter(start: (done: () => void) => void, cancel: (leave: () => void) => void): void {
    const run = () => {
      this.running++;
      let released = false;
      start(() => {
        if (released) return;
        released = true;
        this.running--;
        this.waiting.shift()?.();
      });
    };
    if (this.running < this.limit) {
      run();
      return;
    }
    this.waiting.push(run);
    cancel(() => {
      const i = this.waiting.indexOf(run);
      if (i !== -1) this.waiting.splice(i, 1);
    });
  }
}
