import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AnsweredOutbox } from "../sdk/answered-outbox.js";
import type {
  LeasesExtended,
  ResultsRecorded,
  SessionRequestSchema,
  SessionResponse,
  SessionStartSchema,
  TaskLeaseSchema,
  TaskResultsSchema,
} from "../../gen/sluice/v1/runner_service_pb.js";
import type { TaskTelemetrySchema } from "../../gen/sluice/v1/observability_pb.js";

type SessionRequestInit = MessageInitShape<typeof SessionRequestSchema>;
type Answer = SessionResponse["event"];

/**
 * The runner's side of a RunnerService.Session: the messages it sends (its
 * start, then results, extensions and a drain) and the answers it waits for.
 * The server answers `results` and `extend` messages in the order they were
 * sent, so the oldest waiting call takes each answer.
 */
export class SessionChannel {
  private readonly outbox = new AnsweredOutbox<SessionRequestInit, Answer>();
  private finishing = false;

  constructor(start: MessageInitShape<typeof SessionStartSchema>) {
    this.outbox.push({ message: { case: "start", value: start } });
  }

  /** What the session sends, for the Connect client: ends when the runner ends its side. */
  requests(): AsyncGenerator<SessionRequestInit> {
    return this.outbox.requests();
  }

  /** False once the session ended or its sending side was closed. */
  get open(): boolean {
    return this.outbox.open;
  }

  /** True once the runner ended its side (`finish`): the server's end of the call is then the last word. */
  get finished(): boolean {
    return this.finishing;
  }

  /** Sends results; resolves with the server's answer, rejects if the session ends first. */
  async record(results: MessageInitShape<typeof TaskResultsSchema>): Promise<ResultsRecorded> {
    const answer = await this.outbox.ask({ message: { case: "results", value: results } });
    if (answer.case !== "recorded") throw new ConnectError(`the server answered results with ${answer.case}`, Code.Internal);
    return answer.value;
  }

  /** Extends leases; resolves with the server's answer, rejects if the session ends first. */
  async extend(leases: MessageInitShape<typeof TaskLeaseSchema>[]): Promise<LeasesExtended> {
    const answer = await this.outbox.ask({ message: { case: "extend", value: { leases } } });
    if (answer.case !== "extended") throw new ConnectError(`the server answered an extension with ${answer.case}`, Code.Internal);
    return answer.value;
  }

  /** Sends log lines and progress (not answered); false when the session is closed. */
  telemetry(value: MessageInitShape<typeof TaskTelemetrySchema>): boolean {
    if (!this.outbox.open) return false;
    this.outbox.push({ message: { case: "telemetry", value } });
    return true;
  }

  /** Tells the server that the runner is stopping: nothing more is leased to it. */
  drain(): void {
    if (this.outbox.open) this.outbox.push({ message: { case: "drain", value: {} } });
  }

  /** The server's answer to the oldest unanswered `results` or `extend` message. */
  answered(answer: Answer): void {
    this.outbox.answer(answer);
  }

  /**
   * The runner holds nothing more and has stopped: ends its side of the
   * session. The server queues again what it leased to it meanwhile and ends
   * the call.
   */
  finish(): void {
    if (this.finishing || !this.outbox.open) return;
    this.finishing = true;
    this.outbox.push({ message: { case: "end", value: {} } });
    this.outbox.close();
  }

  /**
   * The session is over: messages waiting for an answer fail (results go again
   * on the next session; a result the server recorded already is refused then,
   * not recorded twice).
   */
  end(): void {
    this.outbox.fail(new ConnectError("the runner's session ended before the server answered", Code.Unavailable));
  }
}
