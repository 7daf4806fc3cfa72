import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client as ConnectClient } from "@connectrpc/connect";
import type { JobService, SubmitJobsRequestSchema, SubmitJobsResponse } from "../../gen/sluice/v1/job_service_pb.js";
import { AnsweredOutbox } from "./answered-outbox.js";

type SubmitJobsInit = MessageInitShape<typeof SubmitJobsRequestSchema>;

/**
 * One JobService.SubmitStream: batches go out as messages, and the server
 * answers them in the order sent. The stream opens with the first batch; `end`
 * closes the client's side once what was sent is answered. When the stream
 * ends early, every batch still waiting fails with the reason (its jobs may or
 * may not have been written, as when a SubmitJobs call fails on its way).
 */
export class SubmitChannel {
  private readonly outbox = new AnsweredOutbox<SubmitJobsInit, SubmitJobsResponse>();

  constructor(api: ConnectClient<typeof JobService>) {
    void this.read(api);
  }

  /** False once the stream ended or is ending: open a new one. */
  get open(): boolean {
    return this.outbox.open;
  }

  /** Sends a batch; resolves with the server's answer to it. */
  submit(req: SubmitJobsInit): Promise<SubmitJobsResponse> {
    return this.outbox.ask(req);
  }

  /** Closes the client's side of the stream after the batches sent so far. */
  end(): void {
    this.outbox.close();
  }

  private async read(api: ConnectClient<typeof JobService>): Promise<void> {
    let reason: unknown = null;
    try {
      for await (const res of api.submitStream(this.outbox.requests())) this.outbox.answer(res);
    } catch (e) {
      reason = e;
    }
    this.outbox.fail(reason ?? new ConnectError("the submit stream ended before the server answered", Code.Unavailable));
  }
}
