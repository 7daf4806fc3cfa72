import { createHash, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ApiError, type Bucket, type Storage } from "@google-cloud/storage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GcsTestServer, crc32cUpdate, startGcsServer } from "./support/gcs-server.js";

const MiB = 1024 * 1024;

let gcs: GcsTestServer;
let storage: Storage;
let bucket: Bucket;

beforeAll(async () => {
  gcs = await startGcsServer();
  gcs.createBucket("data");
  storage = gcs.storage();
  bucket = storage.bucket("data");
});

afterAll(async () => {
  await gcs?.close();
});

/** `size` random bytes in 1 MiB pieces, with the md5 of all of them once the last is taken. */
function randomSource(size: number): { chunks: AsyncGenerator<Buffer>; md5: () => string } {
  const hash = createHash("md5");
  async function* chunks() {
    for (let sent = 0; sent < size; sent += MiB) {
      const chunk = randomBytes(Math.min(MiB, size - sent));
      hash.update(chunk);
      yield chunk;
    }
  }
  return { chunks: chunks(), md5: () => hash.digest("hex") };
}

async function md5Of(stream: Readable): Promise<string> {
  const hash = createHash("md5");
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

/** Starting a resumable upload goes through gaxios, whose errors carry the HTTP status in `status`. */
async function gaxiosStatus(promise: Promise<unknown>): Promise<number | undefined> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect((err as Error | undefined)?.constructor.name).toBe("GaxiosError");
  return (err as { status?: number }).status;
}

describe("buckets", () => {
  it("answers metadata for a bucket and 404 for a missing one", async () => {
    const [meta] = await bucket.getMetadata();
    expect(meta.name).toBe("data");
    expect(await bucket.exists()).toEqual([true]);
    expect(await storage.bucket("missing").exists()).toEqual([false]);
    expect((await apiError(storage.bucket("missing").getMetadata())).code).toBe(404);
  });
});

describe("objects", () => {
  it("computes CRC32C like the Castagnoli check value", () => {
    expect(crc32cUpdate(0, Buffer.from("123456789")).toString(16)).toBe("e3069283");
    expect(crc32cUpdate(crc32cUpdate(0, Buffer.from("1234")), Buffer.from("56789")).toString(16)).toBe("e3069283");
  });

  it("saves small objects by multipart and resumable upload and downloads them", async () => {
    await bucket.file("small/multipart.txt").save("hello multipart", { resumable: false, contentType: "text/plain" });
    await bucket.file("small/resumable.bin").save(Buffer.from("hello resumable"), { metadata: { metadata: { owner: "test" } } });
    await bucket.file("small/empty").save("", { resumable: false });

    expect((await bucket.file("small/multipart.txt").download())[0].toString()).toBe("hello multipart");
    expect((await bucket.file("small/resumable.bin").download())[0].toString()).toBe("hello resumable");
    expect((await bucket.file("small/empty").download())[0].length).toBe(0);

    const [meta] = await bucket.file("small/multipart.txt").getMetadata();
    expect(meta).toMatchObject({ name: "small/multipart.txt", bucket: "data", size: "15", contentType: "text/plain" });
    expect(meta.md5Hash).toBe(createHash("md5").update("hello multipart").digest("base64"));
    const [resumable] = await bucket.file("small/resumable.bin").getMetadata();
    expect(resumable.metadata).toEqual({ owner: "test" });

    const stored = gcs.objects("data");
    expect([...stored.keys()].sort()).toEqual(["small/empty", "small/multipart.txt", "small/resumable.bin"]);
    expect((await gcs.read("data", "small/resumable.bin")).toString()).toBe("hello resumable");
    const kinds = gcs.requests().filter((r) => r.path === "/upload/storage/v1/b/data/o").map((r) => `${r.method} ${r.query.uploadType ?? ""}`);
    expect(kinds).toEqual(["POST multipart", "POST resumable", "PUT resumable", "POST multipart"]);
  });

  it("answers exists, 404 and preconditions, with a new generation on every write", async () => {
    const file = bucket.file("gen/key");
    expect(await file.exists()).toEqual([false]);
    expect((await apiError(file.getMetadata())).code).toBe(404);
    expect((await apiError(file.download())).code).toBe(404);

    await file.save("one", { resumable: false });
    const [first] = await file.getMetadata();
    await file.save("two");
    const [second] = await file.getMetadata();
    expect(await file.exists()).toEqual([true]);
    expect(Number(second.generation)).toBeGreaterThan(Number(first.generation));
    expect(second.metageneration).toBe("1");
    expect(gcs.objects("data").get("gen/key")?.generation).toBe(Number(second.generation));

    const stale = { preconditionOpts: { ifGenerationMatch: Number(first.generation) } };
    expect((await apiError(file.save("three", { resumable: false, ...stale }))).code).toBe(412);
    const fresh = { preconditionOpts: { ifGenerationMatch: 0 } };
    expect(await gaxiosStatus(file.save("three", fresh))).toBe(412);
    await bucket.file("gen/other").save("new", fresh);
    expect((await file.download())[0].toString()).toBe("two");
  });

  it("lists with prefix, delimiter and pages of at most 1,000", async () => {
    const names = Array.from({ length: 1200 }, (_, i) => `list/${String(i).padStart(4, "0")}`);
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(names.slice(i, i + 50).map((n) => gcs.putObject("data", n, n)));
    }
    await gcs.putObject("data", "list/sub/a", "a");
    await gcs.putObject("data", "list/sub/b", "b");
    const before = gcs.requests().length;

    const [files] = await bucket.getFiles({ prefix: "list/" });
    expect(files.map((f) => f.name)).toEqual([...names, "list/sub/a", "list/sub/b"]);
    expect(files[0]?.metadata).toMatchObject({ name: "list/0000", size: "9", bucket: "data" });
    const pages = gcs.requests().slice(before).filter((r) => r.path === "/storage/v1/b/data/o");
    expect(pages.map((p) => p.query.pageToken !== undefined)).toEqual([false, true]);

    const [page, next, response] = await bucket.getFiles({ prefix: "list/", delimiter: "/", maxResults: 700, autoPaginate: false });
    expect(page).toHaveLength(700);
    expect(next).toMatchObject({ pageToken: expect.any(String) });
    const [rest, end, last] = await bucket.getFiles({ ...next, autoPaginate: false });
    expect(rest.map((f) => f.name)).toEqual(names.slice(700));
    expect(end).toBeNull();
    expect((response as { prefixes?: string[] }).prefixes).toBeUndefined();
    expect((last as { prefixes?: string[] }).prefixes).toEqual(["list/sub/"]);

    await bucket.deleteFiles({ prefix: "list/sub/" });
    const left = [...gcs.objects("data").keys()].filter((k) => k.startsWith("list/"));
    expect(left.sort()).toEqual(names);
  });

  it("sends hashes the client checks: a corrupted object fails its download", async () => {
    const file = bucket.file("tampered");
    await file.save("original bytes", { resumable: false });
    await writeFile(gcs.objects("data").get("tampered")!.path, "corrupt! bytes");
    await expect(file.download()).rejects.toMatchObject({ code: "CONTENT_DOWNLOAD_MISMATCH" });
    expect((await file.download({ validation: false }))[0].toString()).toBe("corrupt! bytes");
  });

  it("deletes objects and answers 404 for a second delete", async () => {
    const file = bucket.file("doomed");
    await file.save("bye", { resumable: false });
    await file.delete();
    expect(await file.exists()).toEqual([false]);
    expect((await apiError(file.delete())).code).toBe(404);
    await file.delete({ ignoreNotFound: true });
  });
});

describe("large objects", () => {
  it("streams 50 MiB up with createWriteStream and down with createReadStream", async () => {
    const source = randomSource(50 * MiB);
    const file = bucket.file("big/streamed.bin");
    await pipeline(Readable.from(source.chunks), file.createWriteStream({ contentType: "application/octet-stream" }));
    const md5 = source.md5();
    expect(gcs.objects("data").get("big/streamed.bin")?.size).toBe(50 * MiB);
    expect(await md5Of(file.createReadStream())).toBe(md5);
    expect(Buffer.from((await file.getMetadata())[0].md5Hash!, "base64").toString("hex")).toBe(md5);
  });

  it("uploads in chunks of chunkSize, answering 308 until the last", async () => {
    const source = randomSource(20 * MiB + 12345);
    const file = bucket.file("big/chunked.bin");
    const before = gcs.requests().length;
    await pipeline(Readable.from(source.chunks), file.createWriteStream({ chunkSize: 8 * MiB }));
    const puts = gcs.requests().slice(before).filter((r) => r.method === "PUT");
    expect(puts.map((r) => r.status)).toEqual([308, 308, 200]);
    expect(await md5Of(file.createReadStream())).toBe(source.md5());
    const [tail] = await file.download({ start: 20 * MiB, end: 20 * MiB + 9 });
    expect(tail).toEqual((await gcs.read("data", "big/chunked.bin")).subarray(20 * MiB, 20 * MiB + 10));
  });
});
