import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  CompleteTasksRequestSchema,
  CompleteTasksResponse,
  SessionRequestSchema,
  WorkRequestSchema,
} from "../gen/sluice/v1/runner_service_pb.js";

type SessionRequestInit = MessageInitShape<typeof SessionRequestSchema>;

/**
 * The runner's side of a RunnerService.Session: the messages it sends (its
 * WorkRequest, then results) and the answers it waits for. The server answers
 * results messages in the order they were sent, so the oldest waiting call
 * takes each answer.
 */
export class SessionChannel {
  private readonly outbox: SessionRequestInit[] = [];
  private wake: (() => void) | null = null;
  private readonly waiting: { resolve: (res: CompleteTasksResponse) => void; reject: (e: unknown) => void }[] = [];
  private ended: ConnectError | null = null;

  constructor(work: MessageInitShape<typeof WorkRequestSchema>) {
    this.outbox.push({ message: { case: "work", value: work } });
  }

  /** What the session sends, for the Connect client: ends when the session ends. */
  async *requests(): AsyncGenerator<SessionRequestInit> {
    for (;;) {
      while (this.outbox.length > 0) yield this.outbox.shift()!;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }

  get closed(): boolean {
    return this.ended !== null;
  }

  /** Sends results; resolves with the server's answer, rejects if the session ends first. */
  complete(req: MessageInitShape<typeof CompleteTasksRequestSchema>): Promise<CompleteTasksResponse> {
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.outbox.push({ message: { case: "results", value: req } });
      this.wake?.();
    });
  }

  /** The server's answer to the oldest unanswered results message. */
  recorded(res: CompleteTasksResponse): void {
    this.waiting.shift()?.resolve(res);
  }

  /**
   * The session is over: results waiting for an answer fail (the caller sends
   * them again, on the next session or as CompleteTasks; a result the server
   * recorded already is refused then, not recorded twice).
   */
  end(): void {
    if (this.ended) return;
    this.ended = new ConnectError("the runner's session ended before the server answered", Code.Unavailable);
    for (const w of this.waiting.splice(0)) w.reject(this.ended);
    this.wake?.();
  }
}
