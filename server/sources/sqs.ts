import type { SQSClient } from "@aws-sdk/client-sqs";
import type { Sql } from "postgres";
import { recordObjectEvents } from "./events.js";
import { type LocationRow, listLocations } from "../store/storage-locations.js";
import { s3Changes, unwrapSns } from "./push.js";
import { failedPrecondition, invalid } from "../validation.js";

/**
 * A client for a location's queue, with AWS's endpoint for the region or the
 * URL's origin for an emulator. The SDK is loaded on first use, like the other
 * cloud SDKs (see s3Client).
 */
async function sqsClient(location: Pick<LocationRow, "sqs_queue_url" | "region">): Promise<{ client: SQSClient; sdk: typeof import("@aws-sdk/client-sqs") }> {
  const sdk = await import("@aws-sdk/client-sqs");
  const url = new URL(location.sqs_queue_url);
  const aws = url.hostname.endsWith(".amazonaws.com");
  return { client: new sdk.SQSClient({ region: location.region || "us-east-1", ...(aws ? {} : { endpoint: url.origin }) }), sdk };
}

/**
 * Refuses a queue the server cannot read (FailedPrecondition, saying why), so
 * that registering it fails rather than its poller, later and unheard; a URL
 * that is not one is InvalidArgument.
 */
export async function checkQueueReachable(l: Pick<LocationRow, "sqs_queue_url" | "region">): Promise<void> {
  let url: URL;
  try {
    url = new URL(l.sqs_queue_url);
  } catch {
    url = new URL("invalid:");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid(`sqs_queue_url ${JSON.stringify(l.sqs_queue_url)} is not an http(s) URL, e.g. "https://sqs.us-east-1.amazonaws.com/123456789012/my-queue"`);
  }
  const { client, sdk } = await sqsClient(l);
  try {
    await client.send(new sdk.GetQueueAttributesCommand({ QueueUrl: l.sqs_queue_url, AttributeNames: ["QueueArn"] }), {
      abortSignal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode;
    if (status === 403 || status === 401) {
      throw failedPrecondition(`access to SQS queue ${l.sqs_queue_url} was denied: check the server's AWS credentials`);
    }
    const why = err.name === "QueueDoesNotExist" || /NonExistentQueue/.test(err.name ?? "") ? "it does not exist" : (err.message ?? err.name);
    throw failedPrecondition(`the server cannot reach SQS queue ${l.sqs_queue_url}: ${why}`);
  } finally {
    client.destroy();
  }
}

/**
 * Reads the S3 event notifications of S3 locations that name an SQS queue,
 * with long polls (the queue answers as soon as a message arrives, or after
 * 20 s), and deletes each message once its objects are recorded. Every server
 * reads; SQS hands each message to one of them, and the storage_events key
 * makes a redelivered one harmless.
 */
export class SqsPollers {
  private readonly pollers = new Map<string, AbortController>();
  private syncing: Promise<void> = Promise.resolve();

  constructor(
    private readonly sql: Sql,
    private readonly onError: (e: unknown) => void,
  ) {}

  sync(): Promise<void> {
    this.syncing = this.syncing.then(() => this.doSync()).catch(this.onError);
    return this.syncing;
  }

  private async doSync(): Promise<void> {
    const wanted = new Map((await listLocations(this.sql)).filter((l) => l.type === "s3" && l.sqs_queue_url !== "").map((l) => [l.id, l]));
    for (const [id, stop] of this.pollers) {
      if (!wanted.has(id)) {
        stop.abort();
        this.pollers.delete(id);
      }
    }
    for (const [id, location] of wanted) {
      if (this.pollers.has(id)) continue;
      const stop = new AbortController();
      this.pollers.set(id, stop);
      void this.poll(location, stop.signal);
    }
  }

  private async poll(location: LocationRow, signal: AbortSignal): Promise<void> {
    const { client, sdk } = await sqsClient(location);
    const { DeleteMessageBatchCommand, ReceiveMessageCommand } = sdk;
    let delay = 500;
    while (!signal.aborted) {
      try {
        const res = await client.send(
          new ReceiveMessageCommand({ QueueUrl: location.sqs_queue_url, MaxNumberOfMessages: 10, WaitTimeSeconds: 20 }),
          { abortSignal: signal },
        );
        const done: { Id: string; ReceiptHandle: string }[] = [];
        for (const [i, m] of (res.Messages ?? []).entries()) {
          try {
            const event = await unwrapSns(JSON.parse(m.Body ?? ""));
            if (event !== null) await recordObjectEvents(this.sql, location, s3Changes(event, location.location));
          } catch (e) {
            // A message that can never be read is dropped rather than redelivered forever.
            this.onError(new Error(`dropped an unreadable message from ${location.sqs_queue_url}: ${(e as Error).message}`));
          }
          done.push({ Id: String(i), ReceiptHandle: m.ReceiptHandle! });
        }
        if (done.length > 0) await client.send(new DeleteMessageBatchCommand({ QueueUrl: location.sqs_queue_url, Entries: done }));
        delay = 500;
      } catch (e) {
        if (signal.aborted) break;
        this.onError(e);
        await new Promise((r) => setTimeout(r, delay).unref());
        delay = Math.min(delay * 2, 30_000);
      }
    }
    client.destroy();
  }

  async stop(): Promise<void> {
    await this.syncing;
    for (const stop of this.pollers.values()) stop.abort();
    this.pollers.clear();
  }
}
