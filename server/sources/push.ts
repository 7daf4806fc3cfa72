import { sameSecret } from "../auth/secrets.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Sql } from "postgres";
import { type ObjectChangeIn, recordObjectEvents } from "./events.js";
import { type LocationRow, getLocation } from "../store/storage-locations.js";
import { unstorableText } from "../validation.js";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

const MAX_BODY = 10 * 1024 * 1024;

export class PushError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readBody(req: Request): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new PushError(413, `the body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseJson(text: string, what: string): any {
  try {
    return JSON.parse(text);
  } catch {
    throw new PushError(400, `the body is not JSON; expected ${what}`);
  }
}

/** Refuses (400) text of an event PostgreSQL cannot store, naming where it was. */
function storable(text: string, where: string): string {
  const problem = unstorableText(text);
  if (problem !== null) throw new PushError(400, `${where} ${problem}`);
  return text;
}

/** S3 encodes keys in event notifications as form values: "+" for a space, %XX for the rest. */
export function decodeS3Key(key: string, where: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(key.replace(/\+/g, " "));
  } catch {
    throw new PushError(400, `${where} ${JSON.stringify(key)} is not a key as S3 encodes them (form encoding of UTF-8, e.g. "folder/a+b%C3%A9.txt")`);
  }
  return storable(decoded, where);
}

/** An event's time, if it has one; a value that is not a time is refused (400). */
function eventTime(value: unknown, where: string): Date | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const time = typeof value === "string" ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) throw new PushError(400, `${where} ${JSON.stringify(value)} is not a time; use ISO 8601, e.g. "2026-12-04T10:00:00.000Z"`);
  return time;
}

/** The created objects in an S3 event notification (as S3 sends it to SQS, SNS or a MinIO webhook). */
export function s3Changes(event: any, bucket: string): ObjectChangeIn[] {
  if (event?.Event === "s3:TestEvent") return [];
  if (!Array.isArray(event?.Records)) throw new PushError(400, "expected an S3 event notification with Records");
  const changes: ObjectChangeIn[] = [];
  for (const [i, r] of event.Records.entries()) {
    const name = String(r?.eventName ?? "");
    if (!name.replace(/^s3:/, "").startsWith("ObjectCreated:")) continue;
    const object = r?.s3?.object;
    if (typeof object?.key !== "string") throw new PushError(400, `Records[${i}].s3.object.key is missing`);
    if (r?.s3?.bucket?.name !== bucket) {
      throw new PushError(400, `Records[${i}] is for bucket ${JSON.stringify(r?.s3?.bucket?.name)}, not ${bucket}`);
    }
    const version = `${object.versionId ?? ""}${object.eTag ?? object.etag ?? object.sequencer ?? ""}`;
    if (version === "") throw new PushError(400, `Records[${i}].s3.object has no eTag, versionId or sequencer to tell versions apart`);
    changes.push({
      key: decodeS3Key(object.key, `Records[${i}].s3.object.key`),
      version: storable(version, `Records[${i}].s3.object's eTag, versionId or sequencer`),
      modifiedAt: eventTime(r.eventTime, `Records[${i}].eventTime`),
    });
  }
  return changes;
}

/** SNS's own confirmation URLs: https://sns.REGION.amazonaws.com/ (and .com.cn). */
const SNS_URL = /^https:\/\/sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?\//;

/**
 * Unwraps an SNS envelope; answers a subscription confirmation by visiting its
 * SubscribeURL, only when that is SNS's own (or starts with one of
 * `allowedUrls`, for tests and SNS-compatible services): the server never
 * fetches a URL a caller chose.
 */
export async function unwrapSns(body: any, allowedUrls: readonly string[] = []): Promise<any | null> {
  if (body?.Type === "SubscriptionConfirmation") {
    const url = String(body.SubscribeURL ?? "");
    if (!/^https?:\/\//.test(url)) throw new PushError(400, "SubscriptionConfirmation without a SubscribeURL");
    if (!SNS_URL.test(url) && !allowedUrls.some((prefix) => url.startsWith(prefix))) {
      throw new PushError(400, "SubscribeURL is not an SNS URL (https://sns.REGION.amazonaws.com/...); the subscription was not confirmed");
    }
    const res = await fetch(url);
    if (!res.ok) throw new PushError(502, `confirming the SNS subscription failed: ${res.status} from ${url}`);
    return null;
  }
  if (body?.Type === "UnsubscribeConfirmation") return null;
  if (body?.Type === "Notification") return parseJson(String(body.Message ?? ""), "an S3 event notification in the SNS Message");
  return body;
}

/** The object in a GCS Pub/Sub push message (OBJECT_FINALIZE, OBJECT_METADATA_UPDATE). */
export function gcsChanges(body: any, bucket: string): ObjectChangeIn[] {
  const message = body?.message;
  const attributes = message?.attributes;
  if (!attributes || typeof attributes !== "object") throw new PushError(400, "expected a Pub/Sub push message with message.attributes");
  const type = attributes.eventType;
  if (type !== "OBJECT_FINALIZE" && type !== "OBJECT_METADATA_UPDATE") return [];
  if (attributes.bucketId !== bucket) throw new PushError(400, `the message is for bucket ${JSON.stringify(attributes.bucketId)}, not ${bucket}`);
  if (typeof attributes.objectId !== "string" || !attributes.objectGeneration) {
    throw new PushError(400, "message.attributes needs objectId and objectGeneration");
  }
  let metadata: any = {};
  if (typeof message.data === "string" && message.data !== "") {
    metadata = parseJson(Buffer.from(message.data, "base64").toString("utf8"), "object metadata as base64 JSON in message.data");
  }
  const metageneration = type === "OBJECT_METADATA_UPDATE" ? `.${metadata.metageneration ?? message.messageId ?? ""}` : "";
  return [
    {
      key: storable(attributes.objectId, "message.attributes.objectId"),
      version: storable(`${attributes.objectGeneration}${metageneration}`, "message.attributes.objectGeneration"),
      modifiedAt: eventTime(metadata.updated, "message.data's updated"),
      modified: type === "OBJECT_METADATA_UPDATE" || attributes.overwroteGeneration !== undefined,
    },
  ];
}

function tokenOf(req: Request, url: URL): string {
  const auth = req.headers.authorization;
  if (typeof auth === "string" && auth.startsWith("Bearer ")) return auth.slice(7);
  return url.searchParams.get("token") ?? "";
}

function reply(res: Response, status: number, body: object): void {
  const text = JSON.stringify(body);
  (res as ServerResponse).writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Serves POST /events/s3/{location id} (S3 event notifications, bare, in an SNS
 * envelope, or as a MinIO webhook) and POST /events/gcs/{location id} (Pub/Sub
 * push messages), authenticated by the location's push token.
 */
export function pushHandler(sql: Sql, onError: (e: unknown) => void, snsConfirmUrls: readonly string[] = []) {
  return async (req: Request, res: Response): Promise<void> => {
    try {
      const url = new URL(req.url ?? "/", "http://sluice");
      const m = /^\/events\/(s3|gcs)\/(\d{1,18})$/.exec(url.pathname);
      if (!m) throw new PushError(404, "no such endpoint; use /events/s3/LOCATION_ID or /events/gcs/LOCATION_ID");
      if (req.method !== "POST") throw new PushError(405, "use POST");
      const [, kind, id] = m;
      const location: LocationRow | null = await getLocation(sql, id);
      if (!location || location.type !== kind) throw new PushError(404, `storage location ${id} is not a registered ${kind.toUpperCase()} location`);
      if (!sameSecret(tokenOf(req, url), location.push_token)) {
        throw new PushError(401, `missing or wrong token for storage location ${id}: pass its push token as ?token= or "Authorization: Bearer"`);
      }
      const body = parseJson(await readBody(req), kind === "s3" ? "an S3 event notification" : "a Pub/Sub push message");
      let changes: ObjectChangeIn[] = [];
      if (kind === "s3") {
        const event = await unwrapSns(body, snsConfirmUrls);
        if (event !== null) changes = s3Changes(event, location.location);
      } else {
        changes = gcsChanges(body, location.location.split(":")[1]);
      }
      const jobs = await recordObjectEvents(sql, location, changes);
      reply(res, 200, { objects: changes.length, jobsSubmitted: jobs });
    } catch (e) {
      if (e instanceof PushError) {
        reply(res, e.status, { error: e.message });
      } else {
        onError(e);
        reply(res, 500, { error: "internal error" });
      }
    }
  };
}
