/**
 * A stand-in for Google Cloud Storage's JSON API, for tests. No GCS emulator is
 * in our registries, so this speaks just the calls `@google-cloud/storage` 7
 * makes for buckets' metadata and objects' list, metadata, download, upload
 * (multipart and resumable, single-request or chunked) and delete. Object bytes
 * live in temporary files, so a large upload costs disk, not heap, and md5 and
 * crc32c are computed as the bytes stream through: the client checks both.
 */
import { type Hash, createHash, randomUUID } from "node:crypto";
import { type FileHandle, mkdtemp, open, readFile, rm, unlink } from "node:fs/promises";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Storage } from "@google-cloud/storage";

/** An object as the server holds it: one generation of one key. */
export interface StoredObject {
  bucket: string;
  name: string;
  size: number;
  generation: number;
  metageneration: number;
  contentType: string;
  contentEncoding?: string;
  cacheControl?: string;
  /** User metadata (`metadata.metadata` in the client). */
  metadata?: Record<string, string>;
  /** Base64 of the MD5 digest, as GCS reports it. */
  md5Hash: string;
  /** Base64 of the big-endian CRC32C, as GCS reports it. */
  crc32c: string;
  etag: string;
  timeCreated: Date;
  updated: Date;
  /** The temporary file holding the bytes; a new generation gets a new file. */
  path: string;
}

/** One request the server answered, for asserting how the client talked to it. */
export interface RecordedRequest {
  method: string;
  /** The path with percent-escapes decoded. */
  path: string;
  query: Record<string, string>;
  status: number;
}

export interface GcsTestServer {
  /** `http://127.0.0.1:PORT`, to pass as `apiEndpoint`. */
  url: string;
  /** A client pointed at this server that sends no credentials. */
  storage(projectId?: string): Storage;
  createBucket(name: string): void;
  /** A snapshot of the objects in a bucket, by name. */
  objects(bucket: string): Map<string, StoredObject>;
  /** The bytes of an object, read straight from its file. */
  read(bucket: string, name: string): Promise<Buffer>;
  /** Stores an object without going through HTTP, to seed a test. */
  putObject(bucket: string, name: string, data: string | Uint8Array, contentType?: string): Promise<StoredObject>;
  /** Every request answered so far, oldest first. */
  requests(): RecordedRequest[];
  close(): Promise<void>;
}

// Both are GCS's own limits: a list page holds at most 1,000 entries, and every
// chunk of a resumable upload but the last is a multiple of 256 KiB.
const MAX_LIST_RESULTS = 1000;
const RESUMABLE_CHUNK_MULTIPLE = 256 * 1024;

/** An error answered in the JSON API's shape, which the client turns into an ApiError with this code. */
class GcsError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), eight bytes a step over
// eight tables ("slicing-by-8"): four times the speed of a byte at a time, which
// matters when a test pushes a gigabyte through.
const CRC32C_TABLES = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  CRC32C_TABLES[n] = c;
}
for (let n = 0; n < 256; n++) {
  for (let t = 1; t < 8; t++) {
    const prev = CRC32C_TABLES[(t - 1) * 256 + n]!;
    CRC32C_TABLES[t * 256 + n] = (prev >>> 8) ^ CRC32C_TABLES[prev & 0xff]!;
  }
}

/** Extends a running CRC32C (start from 0) over `buf`. */
export function crc32cUpdate(crc: number, buf: Uint8Array): number {
  const T = CRC32C_TABLES;
  let c = ~crc;
  let i = 0;
  for (const end = buf.length - 7; i < end; i += 8) {
    c ^= buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    c =
      T[1792 + (c & 0xff)]! ^
      T[1536 + ((c >>> 8) & 0xff)]! ^
      T[1280 + ((c >>> 16) & 0xff)]! ^
      T[1024 + (c >>> 24)]! ^
      T[768 + buf[i + 4]!]! ^
      T[512 + buf[i + 5]!]! ^
      T[256 + buf[i + 6]!]! ^
      T[buf[i + 7]!]!;
  }
  for (; i < buf.length; i++) c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function crc32cBase64(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString("base64");
}

/** Object names sort by their UTF-8 bytes in GCS listings. */
function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Receives an object's bytes into a temporary file, hashing them on the way. */
class ObjectWriter {
  size = 0;
  private readonly md5: Hash = createHash("md5");
  private crc = 0;

  private constructor(
    readonly path: string,
    private readonly file: FileHandle,
  ) {}

  static async create(dir: string): Promise<ObjectWriter> {
    const path = join(dir, `${randomUUID()}.bin`);
    return new ObjectWriter(path, await open(path, "w"));
  }

  async write(buf: Uint8Array): Promise<void> {
    if (buf.length === 0) return;
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.file.write(buf, done, buf.length - done, this.size + done);
      done += bytesWritten;
    }
    this.md5.update(buf);
    this.crc = crc32cUpdate(this.crc, buf);
    this.size += buf.length;
  }

  hashes(): { md5Hash: string; crc32c: string } {
    return { md5Hash: this.md5.copy().digest("base64"), crc32c: crc32cBase64(this.crc) };
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  async discard(): Promise<void> {
    await this.file.close().catch(() => {});
    await unlink(this.path).catch(() => {});
  }
}

/** The object resource fields an upload may set. */
interface UploadMetadata {
  name?: string;
  contentType?: string;
  contentEncoding?: string;
  cacheControl?: string;
  metadata?: Record<string, string>;
  md5Hash?: string;
  crc32c?: string;
}

interface UploadSession {
  bucket: string;
  name: string;
  meta: UploadMetadata;
  preconditions: URLSearchParams;
  writer: ObjectWriter;
  result?: StoredObject;
}

interface BucketState {
  name: string;
  timeCreated: Date;
  objects: Map<string, StoredObject>;
}

export async function startGcsServer(): Promise<GcsTestServer> {
  const dir = await mkdtemp(join(tmpdir(), "sluice-gcs-"));
  const buckets = new Map<string, BucketState>();
  const sessions = new Map<string, UploadSession>();
  const log: RecordedRequest[] = [];
  let lastGeneration = 0;
  let url = "";

  function bucketOf(name: string): BucketState {
    const bucket = buckets.get(name);
    if (!bucket) throw new GcsError(404, "notFound", "The specified bucket does not exist.");
    return bucket;
  }

  function objectOf(bucket: BucketState, name: string, query: URLSearchParams): StoredObject {
    const object = bucket.objects.get(name);
    const generation = query.get("generation");
    if (!object || (generation !== null && Number(generation) !== object.generation)) {
      throw new GcsError(404, "notFound", `No such object: ${bucket.name}/${name}`);
    }
    checkPreconditions(object, query);
    return object;
  }

  function createBucket(name: string): BucketState {
    if (buckets.has(name)) throw new GcsError(409, "conflict", "Your previous request to create the named bucket succeeded and you already own it.");
    const bucket = { name, timeCreated: new Date(), objects: new Map<string, StoredObject>() };
    buckets.set(name, bucket);
    return bucket;
  }

  /** Makes the written bytes the new generation of the key, after the checks GCS does. */
  async function commit(
    bucketName: string,
    name: string,
    writer: ObjectWriter,
    meta: UploadMetadata,
    preconditions: URLSearchParams,
    contentType?: string,
  ): Promise<StoredObject> {
    let previous: StoredObject | undefined;
    let object: StoredObject;
    try {
      await writer.close();
      // From here to the map update nothing awaits, so concurrent writes of a key
      // see each other's generations, as preconditions need.
      const bucket = bucketOf(bucketName);
      previous = bucket.objects.get(name);
      checkPreconditions(previous, preconditions);
      const hashes = writer.hashes();
      if ((meta.md5Hash && meta.md5Hash !== hashes.md5Hash) || (meta.crc32c && meta.crc32c !== hashes.crc32c)) {
        throw new GcsError(400, "invalid", "Provided MD5 hash or CRC32C checksum doesn't match calculated hash.");
      }
      const now = new Date();
      const generation = Math.max(lastGeneration + 1, now.getTime() * 1000);
      lastGeneration = generation;
      object = {
        bucket: bucketName,
        name,
        size: writer.size,
        generation,
        metageneration: 1,
        contentType: meta.contentType ?? contentType ?? "application/octet-stream",
        contentEncoding: meta.contentEncoding,
        cacheControl: meta.cacheControl,
        metadata: meta.metadata,
        ...hashes,
        etag: Buffer.from(`${generation}/1`).toString("base64"),
        timeCreated: now,
        updated: now,
        path: writer.path,
      };
      bucket.objects.set(name, object);
    } catch (e) {
      await writer.discard();
      throw e;
    }
    // A download of the old generation that has the file open keeps reading it.
    if (previous) await unlink(previous.path).catch(() => {});
    return object;
  }

  function resource(o: StoredObject): Record<string, unknown> {
    const id = encodeURIComponent(o.name);
    return {
      kind: "storage#object",
      id: `${o.bucket}/${o.name}/${o.generation}`,
      selfLink: `${url}/storage/v1/b/${o.bucket}/o/${id}`,
      mediaLink: `${url}/download/storage/v1/b/${o.bucket}/o/${id}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket: o.bucket,
      generation: String(o.generation),
      metageneration: String(o.metageneration),
      contentType: o.contentType,
      ...(o.contentEncoding ? { contentEncoding: o.contentEncoding } : {}),
      ...(o.cacheControl ? { cacheControl: o.cacheControl } : {}),
      ...(o.metadata ? { metadata: o.metadata } : {}),
      storageClass: "STANDARD",
      size: String(o.size),
      md5Hash: o.md5Hash,
      crc32c: o.crc32c,
      etag: o.etag,
      timeCreated: o.timeCreated.toISOString(),
      updated: o.updated.toISOString(),
      timeStorageClassUpdated: o.timeCreated.toISOString(),
    };
  }

  function bucketResource(b: BucketState): Record<string, unknown> {
    return {
      kind: "storage#bucket",
      id: b.name,
      selfLink: `${url}/storage/v1/b/${b.name}`,
      projectNumber: "0",
      name: b.name,
      timeCreated: b.timeCreated.toISOString(),
      updated: b.timeCreated.toISOString(),
      metageneration: "1",
      location: "US",
      locationType: "multi-region",
      storageClass: "STANDARD",
      etag: "CAE=",
    };
  }

  function list(bucket: BucketState, q: URLSearchParams): Record<string, unknown> {
    const prefix = q.get("prefix") ?? "";
    const delimiter = q.get("delimiter") ?? "";
    const startOffset = q.get("startOffset");
    const endOffset = q.get("endOffset");
    const includeTrailing = q.get("includeTrailingDelimiter") === "true";
    const max = Math.min(Number(q.get("maxResults")) || MAX_LIST_RESULTS, MAX_LIST_RESULTS);
    const token = q.get("pageToken");
    // A page token is the last entry (object name or prefix) of the page before.
    const after = token ? Buffer.from(token, "base64url").toString() : undefined;
    const names = [...bucket.objects.keys()].filter((n) => n.startsWith(prefix)).sort(compareNames);
    const items: Record<string, unknown>[] = [];
    const prefixes: string[] = [];
    let last: string | undefined;
    let more = false;
    for (const name of names) {
      if (startOffset && compareNames(name, startOffset) < 0) continue;
      if (endOffset && compareNames(name, endOffset) >= 0) continue;
      const cut = delimiter ? name.indexOf(delimiter, prefix.length) : -1;
      const key = cut >= 0 ? name.slice(0, cut + delimiter.length) : name;
      if ((after !== undefined && compareNames(key, after) <= 0) || key === last) continue;
      if (items.length + prefixes.length === max) {
        more = true;
        break;
      }
      if (cut < 0) items.push(resource(bucket.objects.get(name)!));
      else {
        prefixes.push(key);
        if (includeTrailing && key === name) items.push(resource(bucket.objects.get(name)!));
      }
      last = key;
    }
    return {
      kind: "storage#objects",
      ...(more ? { nextPageToken: Buffer.from(last!).toString("base64url") } : {}),
      ...(prefixes.length ? { prefixes } : {}),
      ...(items.length ? { items } : {}),
    };
  }

  async function download(req: IncomingMessage, res: ServerResponse, lookup: () => StoredObject): Promise<void> {
    let object = lookup();
    let file: FileHandle | undefined;
    while (!file) {
      try {
        file = await open(object.path, "r");
      } catch (e) {
        // A write of the key replaced (and unlinked) this generation meanwhile: serve the new one.
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        object = lookup();
      }
    }
    try {
      let start = 0;
      let end = object.size - 1;
      const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "");
      if (range && (range[1] || range[2])) {
        if (!range[1]) start = Math.max(0, object.size - Number(range[2]));
        else {
          start = Number(range[1]);
          if (range[2]) end = Math.min(end, Number(range[2]));
        }
        if (start >= object.size) throw new GcsError(416, "requestedRangeNotSatisfiable", "The requested range cannot be satisfied.");
        res.statusCode = 206;
        res.setHeader("Content-Range", `bytes ${start}-${end}/${object.size}`);
      }
      res.setHeader("Content-Type", object.contentType);
      res.setHeader("Content-Length", String(Math.max(0, end - start + 1)));
      res.setHeader("ETag", `"${Buffer.from(object.md5Hash, "base64").toString("hex")}"`);
      res.setHeader("Last-Modified", object.updated.toUTCString());
      res.setHeader("x-goog-generation", String(object.generation));
      res.setHeader("x-goog-metageneration", String(object.metageneration));
      res.setHeader("x-goog-hash", `crc32c=${object.crc32c},md5=${object.md5Hash}`);
      res.setHeader("x-goog-stored-content-length", String(object.size));
      // Without this header the client skips hash validation of the download.
      res.setHeader("x-goog-stored-content-encoding", object.contentEncoding ?? "identity");
      if (object.contentEncoding) res.setHeader("Content-Encoding", object.contentEncoding);
      if (object.size === 0 || end < start) {
        res.end();
        return;
      }
      await pipeline(file.createReadStream({ start, end, autoClose: false }), res);
    } finally {
      await file.close();
    }
  }

  /** `POST /upload/...?uploadType=multipart`: a JSON part with metadata, then the bytes. */
  async function multipartUpload(req: IncomingMessage, bucketName: string, q: URLSearchParams): Promise<StoredObject> {
    bucketOf(bucketName);
    const boundary = /boundary="?([^";]+)"?/.exec(req.headers["content-type"] ?? "")?.[1];
    if (!boundary) throw new GcsError(400, "invalid", "Multipart upload without a boundary.");
    const writer = await ObjectWriter.create(dir);
    let head: { meta: UploadMetadata; contentType?: string } | undefined;
    try {
      const closing = Buffer.from(`\r\n--${boundary}--`);
      // Held back from the file until the end of the body shows where the closing delimiter starts.
      const holdBack = closing.length + 2;
      let pending: Buffer = Buffer.alloc(0);
      for await (const chunk of req as AsyncIterable<Buffer>) {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        if (!head) {
          const parsed = parseMultipartHead(pending, boundary);
          if (!parsed) continue;
          head = parsed;
          pending = pending.subarray(parsed.dataStart);
        }
        if (pending.length > holdBack) {
          await writer.write(pending.subarray(0, pending.length - holdBack));
          pending = pending.subarray(pending.length - holdBack);
        }
      }
      const end = pending.lastIndexOf(closing);
      if (!head || end < 0) throw new GcsError(400, "invalid", "Malformed multipart body.");
      await writer.write(pending.subarray(0, end));
    } catch (e) {
      await writer.discard();
      throw e;
    }
    const name = q.get("name") ?? head.meta.name;
    if (!name) {
      await writer.discard();
      throw new GcsError(400, "required", "Required object name.");
    }
    return commit(bucketName, name, writer, head.meta, q, head.contentType);
  }

  /** `POST /upload/...?uploadType=resumable`: opens a session and answers its URI in Location. */
  async function startResumable(req: IncomingMessage, res: ServerResponse, bucketName: string, q: URLSearchParams): Promise<void> {
    bucketOf(bucketName);
    const meta = (await readJson(req)) as UploadMetadata;
    const name = q.get("name") ?? meta.name;
    if (!name) throw new GcsError(400, "required", "Required object name.");
    checkPreconditions(buckets.get(bucketName)!.objects.get(name), q);
    const contentType = req.headers["x-upload-content-type"];
    if (typeof contentType === "string" && !meta.contentType) meta.contentType = contentType;
    const id = randomUUID();
    sessions.set(id, { bucket: bucketName, name, meta, preconditions: q, writer: await ObjectWriter.create(dir) });
    const location = new URL(`${url}/upload/storage/v1/b/${encodeURIComponent(bucketName)}/o`);
    location.searchParams.set("uploadType", "resumable");
    location.searchParams.set("name", name);
    location.searchParams.set("upload_id", id);
    res.setHeader("Location", location.toString());
    sendJson(res, 200, {});
  }

  /**
   * `PUT` to a session URI. `Content-Range: bytes A-B/T` carries a chunk (B and T may be `*`);
   * `bytes *\/T` asks how far the upload got. The client's default, without `chunkSize`, is one
   * request `bytes 0-*\/*` whose body is the whole object, so the end of that body ends the upload.
   */
  async function putResumable(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const session = sessions.get(id);
    if (!session) throw new GcsError(404, "notFound", "No such upload session.");
    if (session.result) {
      req.resume();
      return sendJson(res, 200, resource(session.result));
    }
    const writer = session.writer;
    const header = req.headers["content-range"] ?? "";
    const chunk = /^bytes (\d+)-(\d+|\*)\/(\d+|\*)$/.exec(header);
    const status = /^bytes \*\/(\d+|\*)$/.exec(header);
    let total: number | undefined;
    let final: boolean;
    if (chunk) {
      const start = Number(chunk[1]);
      if (start > writer.size) {
        req.resume();
        throw new GcsError(400, "invalid", `Chunk starts at ${start} but the session holds ${writer.size} bytes.`);
      }
      // Bytes the session already holds are skipped, as GCS does for a resent chunk.
      let skip = writer.size - start;
      for await (const data of req as AsyncIterable<Buffer>) {
        if (skip >= data.length) {
          skip -= data.length;
          continue;
        }
        await writer.write(skip ? data.subarray(skip) : data);
        skip = 0;
      }
      total = chunk[3] === "*" ? undefined : Number(chunk[3]);
      final = total !== undefined ? writer.size >= total : chunk[2] === "*";
      if (!final && writer.size % RESUMABLE_CHUNK_MULTIPLE !== 0) {
        throw new GcsError(400, "invalid", `A chunk other than the last must be a multiple of ${RESUMABLE_CHUNK_MULTIPLE} bytes.`);
      }
    } else if (status) {
      req.resume();
      total = status[1] === "*" ? undefined : Number(status[1]);
      final = total !== undefined && writer.size === total;
    } else {
      req.resume();
      throw new GcsError(400, "invalid", `Unsupported Content-Range: ${header}`);
    }
    if (total !== undefined && writer.size > total) {
      throw new GcsError(400, "invalid", `The upload holds ${writer.size} bytes, more than the declared ${total}.`);
    }
    if (!final) {
      if (writer.size > 0) res.setHeader("Range", `bytes=0-${writer.size - 1}`);
      res.statusCode = 308;
      res.end();
      return;
    }
    const claimed = parseHashHeader(req.headers["x-goog-hash"]);
    const meta = { ...session.meta, md5Hash: session.meta.md5Hash ?? claimed.md5, crc32c: session.meta.crc32c ?? claimed.crc32c };
    try {
      // Kept after success: GCS answers a finished session's URI with the object.
      session.result = await commit(session.bucket, session.name, writer, meta, session.preconditions);
    } catch (e) {
      sessions.delete(id);
      throw e;
    }
    sendJson(res, 200, resource(session.result));
  }

  async function route(req: IncomingMessage, res: ServerResponse, u: URL): Promise<void> {
    const method = req.method ?? "GET";
    const q = u.searchParams;
    const kind = /^\/(upload|download)\//.exec(u.pathname)?.[1];
    const path = kind ? u.pathname.slice(kind.length + 1) : u.pathname;
    if (path === "/storage/v1/b" && method === "POST" && !kind) {
      const body = (await readJson(req)) as { name?: string };
      if (!body.name) throw new GcsError(400, "required", "Required bucket name.");
      return sendJson(res, 200, bucketResource(createBucket(body.name)));
    }
    const m = /^\/storage\/v1\/b\/([^/]+)(\/o(?:\/(.+))?)?$/.exec(path);
    if (!m) throw new GcsError(501, "notImplemented", `${method} ${u.pathname} is not implemented by the test server.`);
    const bucketName = decodeURIComponent(m[1]!);
    const isObjects = m[2] !== undefined;
    const objectName = m[3] === undefined ? undefined : decodeURIComponent(m[3]);

    if (kind === "upload") {
      if (objectName !== undefined || !isObjects) throw new GcsError(404, "notFound", "Not found.");
      if (method === "POST" && q.get("uploadType") === "multipart") return sendJson(res, 200, resource(await multipartUpload(req, bucketName, q)));
      if (method === "POST" && q.get("uploadType") === "resumable") return startResumable(req, res, bucketName, q);
      if (method === "PUT" && q.get("upload_id")) return putResumable(req, res, q.get("upload_id")!);
      throw new GcsError(501, "notImplemented", `Upload ${method} uploadType=${q.get("uploadType")} is not implemented.`);
    }
    const bucket = bucketOf(bucketName);
    if (!isObjects) {
      if (method === "GET") return sendJson(res, 200, bucketResource(bucket));
    } else if (objectName === undefined) {
      if (method === "GET") return sendJson(res, 200, list(bucket, q));
    } else if (method === "GET") {
      if (q.get("alt") === "media" || kind === "download") return download(req, res, () => objectOf(bucket, objectName, q));
      return sendJson(res, 200, resource(objectOf(bucket, objectName, q)));
    } else if (method === "DELETE") {
      const object = objectOf(bucket, objectName, q);
      bucket.objects.delete(objectName);
      await unlink(object.path).catch(() => {});
      res.statusCode = 204;
      res.end();
      return;
    }
    throw new GcsError(501, "notImplemented", `${method} ${u.pathname} is not implemented by the test server.`);
  }

  const server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://localhost");
    res.on("close", () => {
      log.push({
        method: req.method ?? "GET",
        path: safeDecode(u.pathname),
        query: Object.fromEntries(u.searchParams),
        status: res.statusCode,
      });
    });
    route(req, res, u).catch((e: unknown) => {
      if (res.headersSent) {
        res.destroy(e instanceof Error ? e : undefined);
        return;
      }
      const err = e instanceof GcsError ? e : new GcsError(500, "backendError", e instanceof Error ? e.message : String(e));
      sendJson(res, err.status, {
        error: { code: err.status, message: err.message, errors: [{ message: err.message, domain: "global", reason: err.reason }] },
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    storage: (projectId = "sluice-test") =>
      // A custom endpoint skips google-auth-library unless useAuthWithCustomEndpoint is true,
      // for JSON requests and resumable uploads alike; the project ID saves a lookup.
      new Storage({ apiEndpoint: url, projectId, useAuthWithCustomEndpoint: false }),
    createBucket: (name) => void createBucket(name),
    objects: (name) => new Map([...bucketOf(name).objects].map(([k, o]) => [k, { ...o }])),
    read: async (bucketName, name) => readFile(objectOf(bucketOf(bucketName), name, new URLSearchParams()).path),
    putObject: async (bucketName, name, data, contentType) => {
      bucketOf(bucketName);
      const writer = await ObjectWriter.create(dir);
      await writer.write(typeof data === "string" ? Buffer.from(data) : data);
      return { ...(await commit(bucketName, name, writer, { contentType }, new URLSearchParams())) };
    },
    requests: () => [...log],
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions.values()) if (!session.result) await session.writer.discard();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** GCS's preconditions; `ifGenerationMatch=0` means the object must not exist yet. */
function checkPreconditions(object: StoredObject | undefined, q: URLSearchParams): void {
  const failed = () => new GcsError(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.");
  const generation = object?.generation ?? 0;
  const ifGeneration = q.get("ifGenerationMatch");
  if (ifGeneration !== null && Number(ifGeneration) !== generation) throw failed();
  const ifNotGeneration = q.get("ifGenerationNotMatch");
  if (ifNotGeneration !== null && Number(ifNotGeneration) === generation) throw failed();
  const ifMeta = q.get("ifMetagenerationMatch");
  if (ifMeta !== null && Number(ifMeta) !== (object?.metageneration ?? 0)) throw failed();
  const ifNotMeta = q.get("ifMetagenerationNotMatch");
  if (ifNotMeta !== null && Number(ifNotMeta) === (object?.metageneration ?? 0)) throw failed();
}

/**
 * Finds where the bytes of a two-part `multipart/related` body begin (the client's
 * multipart upload: a JSON metadata part, then the data part), or undefined when
 * `buf` does not reach that far yet.
 */
function parseMultipartHead(buf: Buffer, boundary: string): { meta: UploadMetadata; contentType?: string; dataStart: number } | undefined {
  const delimiter = `--${boundary}\r\n`;
  const first = buf.indexOf(delimiter);
  if (first < 0) return undefined;
  const metaStart = buf.indexOf("\r\n\r\n", first);
  if (metaStart < 0) return undefined;
  const second = buf.indexOf(`\r\n${delimiter}`, metaStart + 4);
  if (second < 0) return undefined;
  const dataHeaders = second + 2 + delimiter.length;
  const dataStart = buf.indexOf("\r\n\r\n", dataHeaders);
  if (dataStart < 0) return undefined;
  let meta: UploadMetadata;
  try {
    meta = JSON.parse(buf.subarray(metaStart + 4, second).toString() || "{}") as UploadMetadata;
  } catch {
    throw new GcsError(400, "parseError", "The metadata part is not JSON.");
  }
  const headers = buf.subarray(dataHeaders, dataStart).toString();
  const contentType = /^content-type:\s*(.+)$/im.exec(headers)?.[1]?.trim();
  return { meta, contentType, dataStart: dataStart + 4 };
}

/** `X-Goog-Hash: crc32c=...,md5=...`, as the client sends with the last chunk when it validates. */
function parseHashHeader(header: string | string[] | undefined): { md5?: string; crc32c?: string } {
  const out: Record<string, string> = {};
  for (const pair of (Array.isArray(header) ? header.join(",") : (header ?? "")).split(",")) {
    const eq = pair.indexOf("=");
    if (eq > 0) out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return { md5: out.md5, crc32c: out.crc32c };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 1 << 20) throw new GcsError(413, "uploadTooLarge", "Metadata too large.");
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new GcsError(400, "parseError", "Parse Error");
  }
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json; charset=UTF-8", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}
