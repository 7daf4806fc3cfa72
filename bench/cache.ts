/**
 * Job cache throughput and streaming memory, on every backend.
 *
 * 1. set and get of 1 KiB, 1 MiB and 100 MiB values through
 *    JobCache.forJob(backend, "bench"), one call at a time, on InMemoryCache,
 *    LocalFileSystemCache (a temporary folder), AmazonS3Cache (fauxqs) and
 *    GoogleStorageCache (the test suite's GCS JSON API server). fauxqs and the
 *    GCS server run in a child process of their own (bench/lib-extra/emulators.ts),
 *    so that client and store do not share an event loop. MB = 10^6 bytes.
 * 2. The peak RSS (VmHWM) of a child process (bench/lib-extra/cache-stream-child.ts)
 *    that streams a 1 GiB value (--quick 256 MiB) in with setStream and out with
 *    getStream, through FS, S3 and GCS.
 *
 * npm run bench:cache [-- --quick] [--stream-mib N]
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { Storage } from "@google-cloud/storage";
import { AmazonS3Cache, type CacheBackend, GoogleStorageCache, InMemoryCache, JobCache, LocalFileSystemCache } from "../runner/index.js";
import { ROOT, log, main, option, printHeader, quick, startEmulators } from "./lib-extra/common.js";

const BUCKET = "bench-cache";
const STREAM_MIB = Number(option("stream-mib") ?? (quick ? 256 : 1024));
const results: string[] = [];

interface Size {
  label: string;
  bytes: number;
  /** At least this many calls, and more until `budgetMs` has passed, but at most `maxOps`. */
  minOps: number;
  budgetMs: number;
  maxOps: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZES: Size[] = quick
  ? [
      { label: "1KiB", bytes: KiB, minOps: 50, budgetMs: 500, maxOps: 20_000 },
      { label: "1MiB", bytes: MiB, minOps: 5, budgetMs: 500, maxOps: 500 },
      { label: "100MiB", bytes: 100 * MiB, minOps: 1, budgetMs: 0, maxOps: 1 },
    ]
  : [
      { label: "1KiB", bytes: KiB, minOps: 200, budgetMs: 3_000, maxOps: 100_000 },
      { label: "1MiB", bytes: MiB, minOps: 20, budgetMs: 3_000, maxOps: 2_000 },
      { label: "100MiB", bytes: 100 * MiB, minOps: 3, budgetMs: 5_000, maxOps: 10 },
    ];

/** Distinct keys a run cycles through (values are overwritten, so that storage stays bounded). */
const KEYS = 8;

async function measure(size: Size, op: (i: number) => Promise<void>): Promise<{ ops: number; ms: number }> {
  await op(0); // warm: connections, code paths
  const t = performance.now();
  let i = 0;
  while (i < size.maxOps && (i < size.minOps || performance.now() - t < size.budgetMs)) await op(i++);
  return { ops: i, ms: performance.now() - t };
}

async function runChild(kind: string, env: NodeJS.ProcessEnv): Promise<{ baselineRss: number; peakAfterSet: number; peak: number; setMs: number; getMs: number; size: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench", "lib-extra", "cache-stream-child.ts"), kind, String(STREAM_MIB * MiB)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  const line = out.trim().split("\n").pop() ?? "";
  if (code !== 0 || !line.startsWith("{")) throw new Error(`the ${kind} streaming child exited ${code}:\n${out}\n${err}`);
  return JSON.parse(line);
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(bytes >= 1e7 ? 0 : 1);
const rate = (x: number) => (!Number.isFinite(x) ? "n/a" : x >= 100 ? String(Math.round(x)) : x.toFixed(1));

await main(async (cleanup) => {
  await printHeader("Sluice benchmark: job cache throughput and streaming memory");
  const folder = await mkdtemp(join(tmpdir(), "sluice-bench-cache-"));
  cleanup(() => rm(folder, { recursive: true, force: true }));
  const emulators = await startEmulators([BUCKET]);
  cleanup(() => emulators.stop());
  log(`fs cache in ${folder}; fauxqs at ${emulators.s3}, GCS test server at ${emulators.gcs} (process ${emulators.pid})`);

  const s3 = new S3Client({ endpoint: emulators.s3, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
  cleanup(() => s3.destroy());
  const storage = new Storage({ apiEndpoint: emulators.gcs, projectId: "bench-project", useAuthWithCustomEndpoint: false });
  const backends: [string, CacheBackend][] = [
    ["memory", new InMemoryCache()],
    ["fs", new LocalFileSystemCache(join(folder, "throughput"))],
    ["s3", new AmazonS3Cache(BUCKET, { client: s3, prefix: "bench" })],
    ["gcs", new GoogleStorageCache(BUCKET, { storage, prefix: "bench" })],
  ];

  log(`\n## set and get, one call at a time (MB = 10^6 bytes)`);
  log(`${"backend".padEnd(8)} ${"size".padEnd(7)} ${"set ops/s".padStart(10)} ${"set MB/s".padStart(9)} ${"get ops/s".padStart(10)} ${"get MB/s".padStart(9)}  calls`);
  const notes: string[] = [];
  for (const size of SIZES) {
    // A plain Uint8Array, as the API types it. (A Buffer would not be copied by
    // InMemoryCache: Buffer#slice is a view, so its figures would be meaningless.)
    const value = new Uint8Array(size.bytes).fill(7);
    for (const [name, backend] of backends) {
      const cache = JobCache.forJob(backend, "bench");
      const key = (i: number) => `${size.label}/k${i % KEYS}`;
      let set: { ops: number; ms: number } | string;
      let written = 0;
      try {
        set = await measure(size, (i) => cache.set(key(i), value));
        written = Math.min(KEYS, Math.max(1, set.ops));
      } catch (e) {
        set = String((e as Error)?.message ?? e).split("\n")[0];
        if (name === "s3" && size.bytes > 11 * MiB) set = `fauxqs takes request bodies up to 11 MiB and AmazonS3Cache.put sends one PutObject: ${set}`;
        notes.push(`${name} set(${size.label}) failed: ${set}`);
        // Seed the values through setStream (multipart on S3), so that get can still be measured.
        written = Math.min(KEYS, size.maxOps);
        for (let i = 0; i < written; i++) await cache.setStream(key(i), [value]);
      }
      const get = await measure(size, async (i) => {
        const v = await cache.get(`${size.label}/k${i % written}`);
        if (v.byteLength !== size.bytes) throw new Error(`${name}: read ${v.byteLength} bytes, expected ${size.bytes}`);
      });
      // Large values are usually streamed: setStream of the same value, in 1 MiB chunks.
      let stream: { ops: number; ms: number } | undefined;
      if (size.bytes >= 100 * MiB) {
        const chunks = Array.from({ length: size.bytes / MiB }, (_, c) => value.subarray(c * MiB, (c + 1) * MiB));
        stream = await measure(size, (i) => cache.setStream(key(i), chunks));
      }
      await cache.clear();
      const setOps = typeof set === "string" ? NaN : (set.ops * 1000) / set.ms;
      const getOps = (get.ops * 1000) / get.ms;
      const streamOps = stream ? (stream.ops * 1000) / stream.ms : NaN;
      log(
        `${name.padEnd(8)} ${size.label.padEnd(7)} ${rate(setOps).padStart(10)} ${rate((setOps * size.bytes) / 1e6).padStart(9)} ` +
          `${rate(getOps).padStart(10)} ${rate((getOps * size.bytes) / 1e6).padStart(9)}  ${typeof set === "string" ? "failed" : set.ops}/${get.ops}` +
          (stream ? `   setStream ${rate((streamOps * size.bytes) / 1e6)} MB/s (${stream.ops} calls)` : ""),
      );
      results.push(
        typeof set === "string"
          ? `cache-set-${size.label}-${name}: n/a (${set})`
          : `cache-set-${size.label}-${name}: ${rate(setOps)} ops/s, ${rate((setOps * size.bytes) / 1e6)} MB/s (${set.ops} calls)`,
        `cache-get-${size.label}-${name}: ${rate(getOps)} ops/s, ${rate((getOps * size.bytes) / 1e6)} MB/s (${get.ops} calls)`,
      );
      if (stream) results.push(`cache-setstream-${size.label}-${name}: ${rate(streamOps)} ops/s, ${rate((streamOps * size.bytes) / 1e6)} MB/s (${stream.ops} calls)`);
    }
  }
  for (const n of notes) log(`note: ${n}`);

  log(`\n## peak RSS of a process streaming ${STREAM_MIB} MiB in (setStream) and out (getStream)`);
  const env = { BENCH_FS_ROOT: join(folder, "stream"), BENCH_S3_ENDPOINT: emulators.s3, BENCH_GCS_URL: emulators.gcs, BENCH_BUCKET: BUCKET };
  for (const kind of ["fs", "s3", "gcs"]) {
    const r = await runChild(kind, env);
    const setRate = r.size / 1e6 / (r.setMs / 1000);
    const getRate = r.size / 1e6 / (r.getMs / 1000);
    log(`${kind.padEnd(4)} peak RSS ${mb(r.peak)} MB (before streaming ${mb(r.baselineRss)} MB, peak during set ${mb(r.peakAfterSet)} MB); set ${rate(setRate)} MB/s, get ${rate(getRate)} MB/s`);
    results.push(
      `cache-stream-rss-${kind}: peak ${mb(r.peak)} MB (baseline ${mb(r.baselineRss)} MB) streaming ${STREAM_MIB} MiB; setStream ${rate(setRate)} MB/s, getStream ${rate(getRate)} MB/s`,
    );
  }

  log("");
  for (const line of results) log(line);
});
