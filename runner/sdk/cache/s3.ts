import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import { Readable } from "node:stream";
import { importOptional } from "../optional.js";
import { type CacheBackend, normalizePrefix } from "./cache.js";
import { Retention, type RetentionOptions } from "./retention.js";

type S3Sdk = typeof import("@aws-sdk/client-s3");
type Storage = typeof import("@aws-sdk/lib-storage");

export interface AmazonS3CacheOptions extends RetentionOptions {
  /** Prepended to every key, e.g. "sluice-cache". */
  prefix?: string;
  /** An S3-compatible endpoint (MinIO, R2, ...); path-style addressing is used with it. */
  endpoint?: string;
  /** The bucket's region (default: AWS_REGION, else us-east-1). */
  region?: string;
  /** A client of your own instead (credentials come from the environment otherwise). */
  client?: S3Client;
  /** Size of the parts of a streamed upload (default 8 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
}

const notFound = (e: unknown) => {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === "NoSuchKey" || err.name === "NotFound" || err.$metadata?.httpStatusCode === 404;
};

/**
 * Keeps values in an S3 bucket (or any S3-compatible store), with credentials
 * from the runner's environment. Streamed values go up as multipart uploads, a
 * few parts at a time, and come down as a stream.
 */
export class AmazonS3Cache implements CacheBackend {
  // The AWS SDK is an optional peer of sluice: loaded when the cache is first used.
  private sdk?: Promise<{ s3: S3Sdk; client: S3Client }>;
  private readonly config: S3ClientConfig;
  private readonly ownClient?: S3Client;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly retention: Retention;

  constructor(
    readonly bucket: string,
    options: AmazonS3CacheOptions = {},
  ) {
    const config: S3ClientConfig = { region: options.region ?? process.env.AWS_REGION ?? "us-east-1" };
    if (options.endpoint) Object.assign(config, { endpoint: options.endpoint, forcePathStyle: true });
    this.config = config;
    this.ownClient = options.client;
    this.prefix = normalizePrefix(options.prefix);
    this.partSize = options.partSize ?? 8 * 1024 * 1024;
    this.retention = new Retention(options, () => this.jobsLastWritten(), (job) => this.removeAll(`${job}/`));
  }

  private load(): Promise<{ s3: S3Sdk; client: S3Client }> {
    this.sdk ??= importOptional("@aws-sdk/client-s3", () => import("@aws-sdk/client-s3"), "AmazonS3Cache").then((s3) => ({
      s3,
      client: this.ownClient ?? new s3.S3Client(this.config),
    }));
    return this.sdk;
  }

  private key(path: string): string {
    return this.prefix + path;
  }

  async put(path: string, data: Uint8Array): Promise<void> {
    if (data.byteLength > this.partSize) {
      // One PutObject is limited to 5 GB (and smaller on some S3-compatible stores).
      await this.putStream(path, Readable.from([Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
      return;
    }
    const { s3, client } = await this.load();
    await client.send(new s3.PutObjectCommand({ Bucket: this.bucket, Key: this.key(path), Body: data }));
    this.retention.touched();
  }

  async putStream(path: string, source: Readable): Promise<void> {
    const { client } = await this.load();
    const { Upload } = await importOptional<Storage>("@aws-sdk/lib-storage", () => import("@aws-sdk/lib-storage"), "AmazonS3Cache (streamed uploads)");
    const upload = new Upload({
      client,
      params: { Bucket: this.bucket, Key: this.key(path), Body: source },
      partSize: this.partSize,
      queueSize: 2,
      leavePartsOnError: false,
    });
    await upload.done();
    this.retention.touched();
  }

  async get(path: string): Promise<Uint8Array | undefined> {
    try {
      const { s3, client } = await this.load();
      const res = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }));
      return await res.Body!.transformToByteArray();
    } catch (e) {
      if (notFound(e)) return undefined;
      throw e;
    }
  }

  async getStream(path: string): Promise<Readable | undefined> {
    try {
      const { s3, client } = await this.load();
      const res = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }));
      return res.Body as Readable;
    } catch (e) {
      if (notFound(e)) return undefined;
      throw e;
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      const { s3, client } = await this.load();
      await client.send(new s3.HeadObjectCommand({ Bucket: this.bucket, Key: this.key(path) }));
      return true;
    } catch (e) {
      if (notFound(e)) return false;
      throw e;
    }
  }

  async remove(path: string): Promise<void> {
    const { s3, client } = await this.load();
    await client.send(new s3.DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(path) }));
  }

  /** Every object under a prefix, with when it was last written. */
  private async *objects(prefix: string): AsyncGenerator<{ path: string; modified: Date }> {
    let token: string | undefined;
    do {
      const { s3, client } = await this.load();
      const res = await client.send(new s3.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.key(prefix), ContinuationToken: token }));
      for (const o of res.Contents ?? []) {
        if (o.Key) yield { path: o.Key.slice(this.prefix.length), modified: o.LastModified ?? new Date(0) };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    for await (const o of this.objects(prefix)) out.push(o.path);
    return out;
  }

  async removeAll(prefix: string): Promise<void> {
    const paths = await this.list(prefix);
    for (let i = 0; i < paths.length; i += 1000) {
      const { s3, client } = await this.load();
      await client.send(
        new s3.DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: paths.slice(i, i + 1000).map((p) => ({ Key: this.key(p) })), Quiet: true },
        }),
      );
    }
  }

  private async jobsLastWritten(): Promise<Map<string, Date>> {
    const out = new Map<string, Date>();
    for await (const o of this.objects("")) {
      const job = o.path.split("/")[0];
      if (!out.has(job) || out.get(job)! < o.modified) out.set(job, o.modified);
    }
    return out;
  }

  /** Deletes the caches of jobs not written to for the retention period now. */
  prune(): Promise<string[]> {
    return this.retention.prune();
  }
}
