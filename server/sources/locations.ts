import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { isAbsolute } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { Code, ConnectError } from "@connectrpc/connect";
import type { LocationRef, StorageTypeName } from "../../runner/wire/storage-event.js";
import type { LocationRow } from "../store/storage-locations.js";
import { invalid } from "../validation.js";

/** What a task's trigger keeps of its location. */
export const refOf = (l: LocationRow): LocationRef => ({ id: l.id, type: l.type, location: l.location, endpoint: l.endpoint, region: l.region });

export interface StorageClients {
  /** GCS JSON API endpoint (tests point it at a local server); the Google default when unset. */
  gcsApiEndpoint?: string;
  /** The folders under which folder locations may be registered. */
  fsRoots: readonly string[];
}

/**
 * The cloud SDKs are loaded on first use (45 MB of a server's memory), so a
 * server without S3 or GCS locations never loads them.
 */
export async function s3Client(l: Pick<LocationRow, "endpoint" | "region">): Promise<S3Client> {
  const { S3Client } = await import("@aws-sdk/client-s3");
  return new S3Client({
    region: l.region || "us-east-1",
    ...(l.endpoint ? { endpoint: l.endpoint, forcePathStyle: true } : {}),
  });
}

export async function gcsBucket(l: Pick<LocationRow, "location">, clients: StorageClients) {
  const { Storage } = await import("@google-cloud/storage");
  const [project, bucket] = l.location.split(":");
  const storage = new Storage({
    projectId: project,
    ...(clients.gcsApiEndpoint ? { apiEndpoint: clients.gcsApiEndpoint, useAuthWithCustomEndpoint: false } : {}),
  });
  return storage.bucket(bucket);
}

const GCS = /^[a-z0-9][a-z0-9-]{4,28}[a-z0-9]:[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;
const S3 = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Checks the shape of a location string for its type. */
export function checkLocation(type: StorageTypeName, location: string, endpoint: string): void {
  if (type === "gcs" && !GCS.test(location)) {
    throw invalid(`location ${JSON.stringify(location)} is not a GCS bucket: use "project:bucket", e.g. "my-project:my-bucket"`);
  }
  if (type === "s3" && !S3.test(location)) {
    throw invalid(`location ${JSON.stringify(location)} is not an S3 bucket name: 3 to 63 lower-case letters, digits, dots and dashes`);
  }
  if (type === "fs" && !isAbsolute(location)) {
    throw invalid(`location ${JSON.stringify(location)} is not an absolute folder path, e.g. "/data/inbox"`);
  }
  if (endpoint !== "") {
    if (type !== "s3") throw invalid("endpoint is only for S3 locations");
    try {
      const u = new URL(endpoint);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    } catch {
      throw invalid(`endpoint ${JSON.stringify(endpoint)} is not an http(s) URL, e.g. "http://127.0.0.1:9000"`);
    }
  }
}

const unreachable = (message: string) => new ConnectError(message, Code.FailedPrecondition);

/** Refuses (FailedPrecondition, saying why) a location the server cannot reach. */
export async function checkReachable(l: Pick<LocationRow, "type" | "location" | "endpoint" | "region">, clients: StorageClients): Promise<void> {
  if (l.type === "fs") {
    try {
      if (!(await stat(l.location)).isDirectory()) throw unreachable(`${l.location} is not a folder`);
      await access(l.location, constants.R_OK | constants.X_OK);
    } catch (e) {
      if (e instanceof ConnectError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      throw unreachable(
        `the server cannot read folder ${l.location} (${code === "ENOENT" ? "it does not exist" : code}); ` +
          "create it, or register it with external_watcher and run `sluice watch` where the folder is",
      );
    }
    return;
  }
  if (l.type === "s3") {
    const client = await s3Client(l);
    const { HeadBucketCommand } = await import("@aws-sdk/client-s3");
    try {
      await client.send(new HeadBucketCommand({ Bucket: l.location }), { abortSignal: AbortSignal.timeout(10_000) });
    } catch (e) {
      const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      const status = err.$metadata?.httpStatusCode;
      const at = l.endpoint || `AWS (${l.region || "us-east-1"})`;
      if (status === 404) throw unreachable(`S3 bucket ${l.location} does not exist at ${at}`);
      if (status === 403 || status === 401) throw unreachable(`access to S3 bucket ${l.location} at ${at} was denied: check the server's AWS credentials`);
      throw unreachable(`the server cannot reach S3 bucket ${l.location} at ${at}: ${err.message ?? err.name}`);
    } finally {
      client.destroy();
    }
    return;
  }
  try {
    await (await gcsBucket(l, clients)).getMetadata({ timeout: 10_000 } as never);
  } catch (e) {
    const err = e as { code?: number; message?: string };
    if (err.code === 404) throw unreachable(`GCS bucket ${l.location} does not exist`);
    if (err.code === 403 || err.code === 401) throw unreachable(`access to GCS bucket ${l.location} was denied: check the server's Google credentials`);
    throw unreachable(`the server cannot reach GCS bucket ${l.location}: ${err.message}`);
  }
}
