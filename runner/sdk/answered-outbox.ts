import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The client's side of a bidirectional stream whose server answers messages
 * in the order they were sent (the runner's session, the submit stream): the
 * messages wait in an outbox the Connect client reads through `requests`, and
 * each answer goes to the oldest caller still waiting.
 */
export class AnsweredOutbox<Req, Res> {
  private readonly outbox: Req[] = [];
  private wake: (() => void) | null = null;
  private readonly waiting: { resolve: (res: Res) => void; reject: (e: unknown) => void }[] = [];
  private closing = false;
  private failure: unknown = null;

  /** False once closed or failed: nothing more can be sent. */
  get open(): boolean {
    return !this.closing && this.failure === null;
  }

  /** True once the stream is over (`fail`). */
  get failed(): boolean {
    return this.failure !== null;
  }

  /** Sends a message no answer is expected for. */
  push(req: Req): void {
    this.outbox.push(req);
    this.wake?.();
  }

  /** Sends a message; resolves with its answer, rejects if the stream ends first. */
  ask(req: Req): Promise<Res> {
    if (!this.open) return Promise.reject(this.failure ?? new ConnectError("the stream is closed", Code.Unavailable));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.push(req);
    });
  }

  /** The server's answer to the oldest unanswered message. */
  answer(res: Res): void {
    this.waiting.shift()?.resolve(res);
  }

  /** Nothing more will be sent: `requests` ends after the messages queued. */
  close(): void {
    this.closing = true;
    this.wake?.();
  }

  /** The stream is over: every caller still waiting fails with `reason`. */
  fail(reason: unknown): void {
    if (this.failure !== null) return;
    this.failure = reason;
    for (const w of this.waiting.splice(0)) w.reject(reason);
    this.wake?.();
  }

  /** What the stream sends, for the Connect client. */
  async *requests(): AsyncGenerator<Req> {
    for (;;) {
      while (this.outbox.length > 0) yield this.outbox.shift()!;
      if (!this.open) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }
}
