import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { type FauxqsServer, startFauxqs } from "fauxqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AmazonS3Cache,
  type CacheBackend,
  CacheKeyNotFoundError,
  type ExecutionContext,
  GoogleStorageCache,
  InMemoryCache,
  JobCache,
  LocalFileSystemCache,
  Task,
} from "../runner/index.js";
import { type GcsTestServer, startGcsServer } from "./support/gcs-server.js";
import { FIXTURES, quiet, spawnNode, useSandbox } from "./support/harness.js";

/** What consumer tasks read, by job. */
const consumed = new Map<string, string>();

class Consumer extends Task {
  static identifier = { name: "Consumer", version: "v1.0" };
  async execute(context: ExecutionContext) {
    const data = context.jobCache.group("results");
    consumed.set(context.jobId, `${await data.getText("greeting")} / ${(await data.getJson<{ n: number }>("meta")).n} / ${await context.jobCache.has("missing")}`);
  }
}

class Producer extends Task<{ who: string }> {
  static identifier = { name: "Producer", version: "v1.0" };
  async execute(context: ExecutionContext) {
    const data = context.jobCache.group("results");
    await data.setText("greeting", `hello ${this.input.who}`);
    await data.setJson("meta", { n: this.input.who.length });
  }
}

class Demo extends Task<{ who: string }> {
  static identifier = { name: "Demo", version: "v1.0" };
  execute(context: ExecutionContext) {
    const producer = context.submitSubtask(new Producer({ who: this.input.who }));
    context.submitSubtask(new Consumer(), { dependsOn: [producer] });
  }
}

const S3_CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

describe("the job cache", () => {
  const box = useSandbox();
  let folder: string;
  let fauxqs: FauxqsServer;
  let s3: S3Client;
  let gcs: GcsTestServer;
  const endpoint = () => `http://127.0.0.1:${fauxqs.port}`;

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), "sluice-cache-"));
    fauxqs = await startFauxqs({ port: 0, logger: false });
    s3 = new S3Client({ endpoint: endpoint(), region: "us-east-1", forcePathStyle: true, credentials: S3_CREDENTIALS });
    await s3.send(new CreateBucketCommand({ Bucket: "cache" }));
    gcs = await startGcsServer();
    gcs.createBucket("cache");
  });
  afterAll(async () => {
    s3?.destroy();
    await fauxqs?.stop();
    await gcs?.close();
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  const backends: [string, () => CacheBackend][] = [
    ["in memory", () => new InMemoryCache()],
    ["on the file system", () => new LocalFileSystemCache(join(folder, "fs"))],
    ["in S3", () => new AmazonS3Cache("cache", { client: s3, prefix: "runs" })],
    ["in GCS", () => new GoogleStorageCache("cache", { storage: gcs.storage(), prefix: "runs" })],
  ];

  for (const [where, make] of backends) {
    it(`hands data from a producer to a consumer that depends on it, ${where}`, async () => {
      const cache = make();
      const jobs = await Promise.all(["world", "sluice"].map((who) => box.client.jobs().submit(`cache ${where}`, new Demo({ who }))));
      await box.client.runner("default", { tasks: [Demo, Producer, Consumer], cache, concurrency: 4, logger: quiet }).runAll();
      for (const job of jobs) expect((await box.client.jobs().get(job.id)).state).toBe("completed");
      expect(consumed.get(jobs[0].id)).toBe("hello world / 5 / false");
      expect(consumed.get(jobs[1].id)).toBe("hello sluice / 6 / false");
      // Each job's values are its own.
      expect(await JobCache.forJob(cache, jobs[0].id).keys()).toEqual(["results/greeting", "results/meta"]);
    });
  }

  it("scopes groups, isolates jobs, reports missing keys and refuses bad keys", async () => {
    const cache = new LocalFileSystemCache(join(folder, "scopes"));
    const one = JobCache.forJob(cache, "1");
    const two = JobCache.forJob(cache, "2");
    await one.set("k", new Uint8Array([1, 2, 3]));
    await one.group("a").group("b").setText("deep", "nested");
    expect(await one.group("a").keys()).toEqual(["b/deep"]);
    expect(await one.getText("a/b/deep")).toBe("nested");
    expect(await one.keys()).toEqual(["a/b/deep", "k"]);
    expect(await two.has("k")).toBe(false);
    expect(await two.keys()).toEqual([]);

    const missing = await two.get("k").catch((e) => e);
    expect(missing).toBeInstanceOf(CacheKeyNotFoundError);
    expect(missing.message).toMatch(/job cache has no value for key "k"/);
    await expect(two.getStream("k")).rejects.toBeInstanceOf(CacheKeyNotFoundError);

    for (const [key, why] of [
      ["", /is empty/],
      ["../escape", /".." segments are not allowed/],
      ["a//b", /empty segment/],
      ["/abs", /empty segment/],
      ["a\\b", /backslash/],
    ] as const) {
      await expect(one.set(key, new Uint8Array([0]))).rejects.toThrow(why);
    }
    expect(() => one.group("..")).toThrow(/group name "\.\." is invalid/);
    await expect(one.set("text", "not bytes" as unknown as Uint8Array)).rejects.toThrow(/values are bytes \(Uint8Array\); use setText or setJson/);

    await one.delete("k");
    expect(await one.has("k")).toBe(false);
    await one.delete("k"); // deleting a missing key is fine
    await one.clear();
    expect(await one.keys()).toEqual([]);
    // Nothing was written outside the cache's folder.
    expect(existsSync(join(folder, "escape"))).toBe(false);
  });

  it("applies the prefix to every key in S3 and GCS", async () => {
    await JobCache.forJob(new AmazonS3Cache("cache", { client: s3, prefix: "team-a/" }), "7").setText("x", "1");
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "cache", Prefix: "team-a/" }));
    expect(listed.Contents?.map((c) => c.Key)).toEqual(["team-a/7/x"]);
    await JobCache.forJob(new GoogleStorageCache("cache", { storage: gcs.storage(), prefix: "team-b" }), "7").group("g").setText("y", "2");
    expect([...gcs.objects("cache").keys()].filter((k) => k.startsWith("team-b/"))).toEqual(["team-b/7/g/y"]);
  });

  it("deletes job caches that were not written to for the retention period", async () => {
    const root = join(folder, "retention");
    const cache = new LocalFileSystemCache(root, { retentionMs: 300 });
    await JobCache.forJob(cache, "old").setText("x", "1");
    await new Promise((r) => setTimeout(r, 400));
    await JobCache.forJob(cache, "fresh").setText("x", "1");
    expect(await cache.prune()).toEqual(["old"]);
    expect((await readdir(root)).filter((d) => !d.startsWith(".")).sort()).toEqual(["fresh"]);
  });

  for (const kind of ["fs", "s3", "gcs"] as const) {
    it(`streams a value larger than the runner's heap through ${{ fs: "the file system", s3: "S3", gcs: "GCS" }[kind]}`, async () => {
      const mib = 256;
      const job = await box.client.jobs().submit(`stream ${kind}`, new StreamWriteProto({ mib }));
      const args = kind === "fs" ? ["fs", join(folder, "stream")] : kind === "s3" ? ["s3", endpoint(), "cache"] : ["gcs", gcs.url, "cache"];
      const runner = spawnNode(["--max-old-space-size=64", join(FIXTURES, "cache-stream-runner.ts"), ...args], {
        SLUICE_URL: box.url,
        AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey,
      });
      const [, rss] = await runner.waitFor(/peak rss (\d+) MiB/, 120_000);
      expect(await runner.exited).toBe(0);
      const wrote = /wrote sha256 (\w+)/.exec(runner.stdout())![1];
      expect(runner.stdout(), runner.stderr()).toContain(`read ${mib * 1024 * 1024} bytes sha256 ${wrote}`);
      // Neither the write nor the read held the value whole: the whole process
      // stayed below the value's size.
      expect(Number(rss)).toBeLessThan(mib);
      expect((await box.client.jobs().get(job.id)).state).toBe("completed");
    });
  }
});

/** Submits the fixture runner's StreamWrite task (same identifier, no code needed here). */
class StreamWriteProto extends Task<{ mib: number }> {
  static identifier = { name: "StreamWrite", version: "v1.0" };
  execute() {
    throw new Error("runs in the fixture runner");
  }
}
