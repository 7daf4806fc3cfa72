import type { Bucket, Storage, StorageOptions } from "@google-cloud/storage";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type CacheBackend, normalizePrefix } from "./cache.js";
import { importOptional } from "../optional.js";
import { Retention, type RetentionOptions } from "./retention.js";

export interface GoogleStorageCacheOptions extends RetentionOptions {
  /** Prepended to every key, e.g. "sluice-cache". */
  prefix?: string;
  /** A client of your own (credentials come from the environment otherwise). */
  storage?: Storage;
  /** Options for the client made when `storage` is not given (e.g. projectId, apiEndpoint). */
  storageOptions?: StorageOptions;
}

const notFound = (e: unknown) => (e as { code?: number }).code === 404;

/**
 * Keeps values in a Google Cloud Storage bucket, with credentials from the
 * runner's environment. Streamed values go up as resumable uploads and come
 * down as a stream.
 */
export class GoogleStorageCache implements CacheBackend {
  // @google-cloud/storage is an optional peer of sluice: loaded when the cache is first used.
  private handle?: Promise<Bucket>;
  private readonly options: GoogleStorageCacheOptions;
  private readonly prefix: string;
  private readonly retention: Retention;

  constructor(
    readonly bucket: string,
    options: GoogleStorageCacheOptions = {},
  ) {
    this.options = options;
    this.prefix = normalizePrefix(options.prefix);
    this.retention = new Retention(options, () => this.jobsLastWritten(), (job) => this.removeAll(`${job}/`));
  }

  private bucketHandle(): Promise<Bucket> {
    this.handle ??= (async () => {
      const storage =
        this.options.storage ??
        new (await importOptional("@google-cloud/storage", () => import("@google-cloud/storage"), "GoogleStorageCache")).Storage(this.options.storageOptions);
      return storage.bucket(this.bucket);
    })();
    return this.handle;
  }

  private async file(path: string) {
    return (await this.bucketHandle()).file(this.prefix + path);
  }

  async put(path: string, data: Uint8Array): Promise<void> {
    await (await this.file(path)).save(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { resumable: data.byteLength > 8 * 1024 * 1024 });
    this.retention.touched();
  }

  async putStream(path: string, source: Readable): Promise<void> {
    await pipeline(source, (await this.file(path)).createWriteStream({ resumable: true }));
    this.retention.touched();
  }

  async get(path: string): Promise<Uint8Array | undefined> {
    try {
      const [data] = await (await this.file(path)).download();
      return data;
    } catch (e) {
      if (notFound(e)) return undefined;
      throw e;
    }
  }

  async getStream(path: string): Promise<Readable | undefined> {
    const file = await this.file(path);
    const [exists] = await file.exists();
    return exists ? file.createReadStream() : undefined;
  }

  async exists(path: string): Promise<boolean> {
    const [exists] = await (await this.file(path)).exists();
    return exists;
  }

  async remove(path: string): Promise<void> {
    await (await this.file(path)).delete({ ignoreNotFound: true });
  }

  private async files(prefix: string) {
    const [files] = await (await this.bucketHandle()).getFiles({ prefix: this.prefix + prefix, autoPaginate: true });
    return files;
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.files(prefix)).map((f) => f.name.slice(this.prefix.length));
  }

  async removeAll(prefix: string): Promise<void> {
    for (const f of await this.files(prefix)) await f.delete({ ignoreNotFound: true });
  }

  private async jobsLastWritten(): Promise<Map<string, Date>> {
    const out = new Map<string, Date>();
    for (const f of await this.files("")) {
      const job = f.name.slice(this.prefix.length).split("/")[0];
      const at = new Date(String(f.metadata.updated ?? 0));
      if (!out.has(job) || out.get(job)! < at) out.set(job, at);
    }
    return out;
  }

  /** Deletes the caches of jobs not written to for the retention period now. */
  prune(): Promise<string[]> {
    return this.retention.prune();
  }
}
