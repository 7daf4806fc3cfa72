import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client as ConnectClient } from "@connectrpc/connect";
import type { JobService, SubmitJobsRequestSchema, SubmitJobsResponse } from "../gen/sluice/v1/job_service_pb.js";

type SubmitJobsInit = MessageInitShape<typeof SubmitJobsRequestSchema>;

/**
 * One JobService.SubmitStream: batches go out as messages, and the server
 * answers them in the order sent, so the oldest waiting batch takes each
 * answer. The stream opens with the first batch; `end` closes the client's
 * side once what was sent is answered. When the stream ends early, every
 * batch still waiting fails with the reason (its jobs may or may not have been
 * written, as when a SubmitJobs call fails on its way).
 */
export class SubmitChannel {
  private readonly outbox: SubmitJobsInit[] = [];
  private wake: (() => void) | null = null;
  private readonly waiting: { resolve: (res: SubmitJobsResponse) => void; reject: (e: unknown) => void }[] = [];
  private ending = false;
  private ended: unknown = null;

  constructor(api: ConnectClient<typeof JobService>) {
    void this.read(api);
  }

  /** False once the stream ended or is ending: open a new one. */
  get open(): boolean {
    return !this.ending && this.ended === null;
  }

  /** Sends a batch; resolves with the server's answer to it. */
  submit(req: SubmitJobsInit): Promise<SubmitJobsResponse> {
    if (!this.open) return Promise.reject(this.ended ?? new ConnectError("the submit stream is closed", Code.Unavailable));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.outbox.push(req);
      this.wake?.();
    });
  }

  /** Closes the client's side of the stream after the batches sent so far. */
  end(): void {
    this.ending = true;
    this.wake?.();
  }

  private async *requests(): AsyncGenerator<SubmitJobsInit> {
    for (;;) {
      while (this.outbox.length > 0) yield this.outbox.shift()!;
      if (this.ending || this.ended !== null) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }

  private async read(api: ConnectClient<typeof JobService>): Promise<void> {
    let reason: unknown = null;
    try {
      for await (const res of api.submitStream(this.requests())) this.waiting.shift()?.resolve(res);
    } catch (e) {
      reason = e;
    }
    this.ended = reason ?? new ConnectError("the submit stream ended before the server answered", Code.Unavailable);
    for (const w of this.waiting.splice(0)) w.reject(this.ended);
    this.wake?.();
  }
}
