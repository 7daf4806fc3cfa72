import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AnsweredOutbox } from "./answered-outbox.js";
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
  private readonly outbox = new AnsweredOutbox<SessionRequestInit, CompleteTasksResponse>();

  constructor(work: MessageInitShape<typeof WorkRequestSchema>) {
    this.outbox.push({ message: { case: "work", value: work } });
  }

  /** What the session sends, for the Connect client: ends when the session ends. */
  requests(): AsyncGenerator<SessionRequestInit> {
    return this.outbox.requests();
  }

  get closed(): boolean {
    return this.outbox.failed;
  }

  /** Sends results; resolves with the server's answer, rejects if the session ends first. */
  complete(req: MessageInitShape<typeof CompleteTasksRequestSchema>): Promise<CompleteTasksResponse> {
    return this.outbox.ask({ message: { case: "results", value: req } });
  }

  /** The server's answer to the oldest unanswered results message. */
  recorded(res: CompleteTasksResponse): void {
    this.outbox.answer(res);
  }

  /**
   * The session is over: results waiting for an answer fail (the caller sends
   * them again, on the next session or as CompleteTasks; a result the server
   * recorded already is refused then, not recorded twice).
   */
  end(): void {
    this.outbox.fail(new ConnectError("the runner's session ended before the server answered", Code.Unavailable));
  }
}
