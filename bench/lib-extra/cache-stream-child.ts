/**
 * Streams one value of SIZE bytes into a job cache backend with setStream and
 * back out with getStream, in chunks of 1 MiB that are never held together,
 * and prints its peak RSS (VmHWM from /proc/self/status) as one JSON line.
 *
 * node --import tsx bench/lib-extra/cache-stream-child.ts BACKEND SIZE
 *   BACKEND: fs (BENCH_FS_ROOT), s3 (BENCH_S3_ENDPOINT) or gcs (BENCH_GCS_URL); bucket BENCH_BUCKET
 */
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { S3Client } from "@aws-sdk/client-s3";
import { Storage } from "@google-cloud/storage";
import { AmazonS3Cache, type CacheBackend, GoogleStorageCache, JobCache, LocalFileSystemCache } from "../../runner/index.js";

const vmHwm = () => Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;
const vmRss = () => Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;

const [kind, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
const bucket = process.env.BENCH_BUCKET ?? "bench-cache";
let backend: CacheBackend;
if (kind === "fs") backend = new LocalFileSystemCache(process.env.BENCH_FS_ROOT!);
else if (kind === "s3") {
  const client = new S3Client({
    endpoint: process.env.BENCH_S3_ENDPOINT,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  backend = new AmazonS3Cache(bucket, { client, prefix: "rss" });
} else if (kind === "gcs") {
  const storage = new Storage({ apiEndpoint: process.env.BENCH_GCS_URL, projectId: "bench-project", useAuthWithCustomEndpoint: false });
  backend = new GoogleStorageCache(bucket, { storage, prefix: "rss" });
} else throw new Error(`backend must be fs, s3 or gcs, got ${kind}`);

const cache = JobCache.forJob(backend, "rss");
const CHUNK = 1024 * 1024;

// Load every code path once with a small value, so the baseline includes the SDKs.
await cache.setStream("warm", Readable.from([Buffer.alloc(1024, 1)]));
for await (const _ of await cache.getStream("warm"));
globalThis.gc?.();
const baseline = vmRss();

async function* chunks(): AsyncGenerator<Buffer> {
  for (let sent = 0; sent < size; sent += CHUNK) {
    const b = Buffer.allocUnsafe(Math.min(CHUNK, size - sent));
    b.fill(sent / CHUNK);
    yield b;
  }
}

let t = performance.now();
await cache.setStream("big", Readable.from(chunks()));
const setMs = performance.now() - t;
const afterSet = vmHwm();
t = performance.now();
let received = 0;
for await (const chunk of await cache.getStream("big")) received += (chunk as Buffer).length;
const getMs = performance.now() - t;
if (received !== size) throw new Error(`read back ${received} bytes of ${size}`);
await cache.delete("big");
console.log(JSON.stringify({ kind, size, baselineRss: baseline, peakAfterSet: afterSet, peak: vmHwm(), setMs, getMs }));
