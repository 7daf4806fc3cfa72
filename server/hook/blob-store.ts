import { createReadStream } from "node:fs";
import { mkdir, rename } from "node:fs/promises";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { Sql } from "postgres";
import { s3Client } from "../sources/locations.js";
import { getLocation } from "../store/storage-locations.js";
import type { AttemptKeys } from "./attempt-keys.js";

/** How long a download URL works. */
export const DOWNLOAD_URL_TTL_MS = 15 * 60_000;

/** Where content uploaded through job hooks is kept, one object per MD5, and how it is handed out. */
export interface BlobStore {
  /** Moves a received, checked file into the store as `hash`. */
  put(hash: string, file: string, size: number): Promise<void>;
  /** A URL a GET of which returns the content for a while. */
  downloadUrl(hash: string): Promise<string>;
}

/** A folder of the server: downloads are URLs of the server, signed with the server key. */
export class FolderBlobStore implements BlobStore {
  constructor(
    readonly dir: string,
    private readonly keys: AttemptKeys,
    private readonly baseUrl: () => string,
  ) {}

  path(hash: string): string {
    return join(this.dir, "blobs", hash.slice(0, 2), hash);
  }

  async put(hash: string, file: string): Promise<void> {
    const path = this.path(hash);
    await mkdir(join(path, ".."), { recursive: true });
    // Same hash, same bytes: a file already there from a concurrent upload is as good.
    await rename(file, path);
  }

  async downloadUrl(hash: string, now = Date.now()): Promise<string> {
    const expires = now + DOWNLOAD_URL_TTL_MS;
    return `${this.baseUrl()}/job-files/blobs/${hash}?expires=${expires}&signature=${this.signature(hash, expires)}`;
  }

  signature(hash: string, expires: number | string): string {
    return this.keys.sign(`${hash} ${expires}`);
  }
}

/**
 * An S3 storage location (SLUICE_JOB_FILES_LOCATION): content at
 * `job-files/HASH` in its bucket, downloads presigned by the AWS SDK.
 */
export class S3BlobStore implements BlobStore {
  private client: Promise<{ s3: S3Client; bucket: string }> | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly locationId: string,
  ) {}

  private connect(): Promise<{ s3: S3Client; bucket: string }> {
    this.client ??= (async () => {
      const l = await getLocation(this.sql, this.locationId);
      if (!l) throw new Error(`SLUICE_JOB_FILES_LOCATION names storage location ${this.locationId}, which does not exist: register it, or fix the id`);
      if (l.type !== "s3") throw new Error(`SLUICE_JOB_FILES_LOCATION names storage location ${this.locationId}, of type ${l.type}: job files go to S3 locations or the server's folder`);
      return { s3: await s3Client(l), bucket: l.location };
    })();
    this.client.catch(() => (this.client = null));
    return this.client;
  }

  async put(hash: string, file: string, size: number): Promise<void> {
    const { s3, bucket } = await this.connect();
    const { PutObjectCommand } = await import("@aws-sdk/client-s3");
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `job-files/${hash}`,
        Body: createReadStream(file),
        ContentLength: size,
        // S3 checks the bytes it stores against the MD5 they were checked with here.
        ContentMD5: Buffer.from(hash, "hex").toString("base64"),
      }),
    );
  }

  async downloadUrl(hash: string): Promise<string> {
    const { s3, bucket } = await this.connect();
    const { GetObjectCommand } = await import("@aws-sdk/client-s3");
    const { getSignedUrl } = await import("@aws-sdk/s3-request-presigner");
    return getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: `job-files/${hash}` }), { expiresIn: DOWNLOAD_URL_TTL_MS / 1000 });
  }
}
