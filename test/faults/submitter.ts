import { SubmitJobRequestSchema } from "../../gen/sluice/v1/job_service_pb.js";
import { Client } from "../../runner/sdk/client.js";
import { FaultTask } from "./fault-task.js";

/**
 * Whether submits carry idempotency keys: then a submit sent again after its
 * answer was lost must not write a second job.
 */
export const SUBMITS_HAVE_KEYS = SubmitJobRequestSchema.fields.some((f) => f.name === "idempotency_key");

/**
 * Submits one-task FaultTask jobs through the SDK, as a program would, and
 * retries each submit that fails until it is acknowledged. Every logical
 * submit has a name of its own (`PREFIX-N`), so that the jobs written for it
 * can be found whether or not an answer came back.
 */
export class Submitter {
  /** Job id by name, for every submit the server acknowledged. */
  readonly acked = new Map<string, string>();
  /** Submits that failed and were sent again. */
  retried = 0;
  /** Submits started (each is sent until acknowledged). */
  started = 0;
  /** Submits on their way now. */
  inFlight = 0;
  private readonly client: Client;
  /** No new submits (those on their way are still sent until acknowledged). */
  private ending = false;
  /** Nothing is sent any more. */
  private stopped = false;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly taskMs: number,
  ) {
    this.client = new Client({ url });
  }

  /**
   * Submits `count` jobs (Infinity: until `end`), `ratePerSecond` of them a
   * second (Infinity: all at once, the SDK batching them), each retried until
   * acknowledged or `stop`.
   */
  async run(count: number, ratePerSecond = Number.POSITIVE_INFINITY): Promise<void> {
    const jobs = this.client.jobs();
    const started = performance.now();
    const submitted: Promise<void>[] = [];
    for (let i = 0; i < count && !this.ending && !this.stopped; i++) {
      const due = started + (i * 1000) / ratePerSecond;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      this.started++;
      submitted.push(this.submitUntilAcknowledged(jobs, `${this.prefix}-${i}`));
    }
    await Promise.all(submitted);
  }

  private async submitUntilAcknowledged(jobs: ReturnType<Client["jobs"]>, name: string): Promise<void> {
    while (!this.stopped) {
      this.inFlight++;
      try {
        // The same key on every attempt: a submit whose answer was lost and
        // that is sent again must not write a second job.
        const job = await jobs.submit(name, new FaultTask({ k: name, ms: this.taskMs }), { idempotencyKey: name });
        this.acked.set(name, job.id);
        return;
      } catch {
        this.retried++;
      } finally {
        this.inFlight--;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Starts no more submits; `run` resolves once those started are acknowledged. */
  end(): void {
    this.ending = true;
  }

  /** Gives up on submits not yet acknowledged and closes the connection. */
  stop(): void {
    this.stopped = true;
    this.client.close();
  }
}
