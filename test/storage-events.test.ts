import { unwrapSns } from "../server/sources/push.js";
import { createServer } from "node:http";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { SQSClient, SendMessageCommand } from "@aws-sdk/client-sqs";
import { Code, ConnectError } from "@connectrpc/connect";
import { type FauxqsServer, interceptLocalhostDns, startFauxqs } from "fauxqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, type ExecutionContext, type Job, StorageEventTask, type StorageLocation, TaskRunner } from "../runner/index.js";
import { type SluiceServer, buildServer } from "../server/build-server.js";
import { compileGlob } from "../server/sources/glob.js";
import { type GcsTestServer, startGcsServer } from "./support/gcs-server.js";
import { ROOT, createDatabase, eventually, quiet, sluice, spawnNode } from "./support/harness.js";

// The server's and the runner's S3 clients take credentials from the environment, as in production.
process.env.AWS_ACCESS_KEY_ID = "test";
process.env.AWS_SECRET_ACCESS_KEY = "test";

/** What storage event tasks saw, by job. */
const seen = new Map<string, { type: string; key: string; content: string; label: string }>();

class LogObject extends StorageEventTask<{ label: string }> {
  static identifier = { name: "LogObject", version: "v1.0" };
  async execute(context: ExecutionContext) {
    const t = this.trigger!;
    const content = new TextDecoder().decode(await t.storage.read(t.location));
    seen.set(context.jobId, { type: t.type, key: t.key, content, label: this.input.label });
  }
}

describe("the glob table", () => {
  it("matches as Tilebox documents", () => {
    const keys = ["a.txt", "b.csv", "x/a.txt", "x/y/a.txt", "folder/a.txt", "folder/sub/b.txt", "folder", "c.txt"];
    const matching = (glob: string) => keys.filter(compileGlob(glob));
    expect(matching("*.txt")).toEqual(["a.txt", "c.txt"]);
    expect(matching("**/*.txt")).toEqual(["x/a.txt", "x/y/a.txt", "folder/a.txt", "folder/sub/b.txt"]);
    expect(matching("**.txt")).toEqual(["a.txt", "x/a.txt", "x/y/a.txt", "folder/a.txt", "folder/sub/b.txt", "c.txt"]);
    expect(matching("folder/*")).toEqual(["folder/a.txt"]);
    expect(matching("folder/**")).toEqual(["folder/a.txt", "folder/sub/b.txt"]);
    expect(matching("[a-b].txt")).toEqual(["a.txt"]);
    expect(() => compileGlob("[a-")).toThrow(/glob "\[a-" is invalid/);
  });
});

describe("storage event tasks", () => {
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let server: SluiceServer;
  let client: Client;
  let runner: TaskRunner;
  let running: Promise<void>;
  let dataDir: string;
  let folder: string;
  let fauxqs: FauxqsServer;
  let s3: S3Client;
  let gcs: GcsTestServer;
  const start = () => buildServer({ host: "127.0.0.1", port: 0, databaseUrl: db.url, dataDir, gcsApiEndpoint: gcs.url, fsRoots: [tmpdir()] });

  beforeAll(async () => {
    db = await createDatabase();
    dataDir = await mkdtemp(join(tmpdir(), "sluice-storage-data-"));
    folder = await mkdtemp(join(tmpdir(), "sluice-storage-folder-"));
    fauxqs = await startFauxqs({ port: 0, logger: false });
    s3 = new S3Client({ endpoint: `http://127.0.0.1:${fauxqs.port}`, region: "us-east-1", forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: "inbox" }));
    gcs = await startGcsServer();
    gcs.createBucket("scenes");
    // The runner's GCS client finds the emulator the way @google-cloud/storage does.
    // (It takes the base URL of the JSON API, path included.)
    process.env.STORAGE_EMULATOR_HOST = `${gcs.url}/storage/v1`;
    server = await start();
    client = new Client({ url: server.url });
    runner = client.runner("default", { tasks: [LogObject], concurrency: 4, logger: quiet, builtins: true });
    running = runner.runForever();
  });
  afterAll(async () => {
    await runner?.stop();
    await running;
    client?.close();
    await server?.stop();
    s3?.destroy();
    await fauxqs?.stop();
    await gcs?.close();
    await db?.drop();
    for (const d of [dataDir, folder]) if (d) await rm(d, { recursive: true, force: true });
  });

  const jobsOf = async (recurrentTaskId: string): Promise<Job[]> =>
    (await client.jobs().list({ limit: 1000 })).filter((j) => j.recurrentTaskId === recurrentTaskId).sort((a, b) => Number(a.id) - Number(b.id));
  const completed = (id: string, n: number) =>
    eventually(async () => {
      const jobs = await jobsOf(id);
      return jobs.filter((j) => j.state === "completed").length >= n ? jobs : undefined;
    }, 30_000, `${n} completed jobs of recurrent task ${id}`);
  const refused = async (call: Promise<unknown>, code: Code, message: RegExp) => {
    const err = await call.then(() => undefined, ConnectError.from);
    expect(err).toBeInstanceOf(ConnectError);
    expect(Code[err!.code]).toBe(Code[code]);
    expect(err!.rawMessage).toMatch(message);
  };

  it("refuses locations the server cannot reach, saying why, and bad globs", async () => {
    const recurrent = client.recurrentTasks();
    await refused(recurrent.registerStorageLocation({ type: "fs", location: join(folder, "missing") }), Code.FailedPrecondition, /cannot read folder .*missing \(it does not exist\)/);
    await refused(recurrent.registerStorageLocation({ type: "fs", location: "relative/path" }), Code.InvalidArgument, /not an absolute folder path/);
    await refused(
      recurrent.registerStorageLocation({ type: "s3", location: "no-such-bucket", endpoint: `http://127.0.0.1:${fauxqs.port}` }),
      Code.FailedPrecondition,
      /S3 bucket no-such-bucket does not exist at http:\/\/127\.0\.0\.1/,
    );
    await refused(recurrent.registerStorageLocation({ type: "s3", location: "inbox", endpoint: "http://127.0.0.1:9" }), Code.FailedPrecondition, /cannot reach S3 bucket inbox/);
    await refused(recurrent.registerStorageLocation({ type: "gcs", location: "test-project:no-such-bucket" }), Code.FailedPrecondition, /GCS bucket test-project:no-such-bucket does not exist/);
    await refused(recurrent.registerStorageLocation({ type: "gcs", location: "just-a-bucket" }), Code.InvalidArgument, /use "project:bucket"/);
    expect(await recurrent.storageLocations()).toEqual([]);

    const local = await recurrent.registerStorageLocation({ type: "fs", location: folder });
    await refused(
      recurrent.createRecurringStorageEventTask("bad glob", "default", new LogObject({ label: "x" }), { triggers: [[local, "[a-"]] }),
      Code.InvalidArgument,
      /triggers\[0\]\.glob: glob "\[a-" is invalid/,
    );
    await refused(
      recurrent.createRecurringStorageEventTask("no location", "default", new LogObject({ label: "x" }), { triggers: [["9999", "*"]] }),
      Code.NotFound,
      /storage location 9999 does not exist/,
    );
    await recurrent.deleteStorageLocation(local);
  });

  it("start one job per new .txt file in a watched folder, CREATED then MODIFIED, and catch up after a restart", async () => {
    const recurrent = client.recurrentTasks();
    const local = await recurrent.registerStorageLocation({ type: "fs", location: folder, reconcileIntervalSeconds: 0 });
    expect(local).toMatchObject({ type: "fs", location: folder });
    expect((await recurrent.storageLocations()).map((l) => l.id)).toContain(local.id);
    const task = await recurrent.createRecurringStorageEventTask("log-texts", "default", new LogObject({ label: "fs" }), { triggers: [[local, "**.txt"]] });
    expect(task.storageEventTriggers).toEqual([{ locationId: local.id, glob: "**.txt" }]);

    await writeFile(join(folder, "a.txt"), "first");
    await mkdir(join(folder, "sub"));
    await writeFile(join(folder, "sub", "b.txt"), "second");
    await writeFile(join(folder, "c.csv"), "not a text file");
    const jobs = await completed(task.id, 2);
    expect(jobs).toHaveLength(2);
    const byKey = new Map(jobs.map((j) => [seen.get(j.id)!.key, seen.get(j.id)!]));
    expect(byKey.get("a.txt")).toEqual({ type: "CREATED", key: "a.txt", content: "first", label: "fs" });
    expect(byKey.get("sub/b.txt")).toMatchObject({ type: "CREATED", content: "second" });
    expect(jobs.map((j) => j.name).sort()).toEqual(["log-texts a.txt", "log-texts sub/b.txt"]);

    await writeFile(join(folder, "a.txt"), "first, changed");
    const more = await completed(task.id, 3);
    expect(seen.get(more[2].id)).toMatchObject({ type: "MODIFIED", key: "a.txt", content: "first, changed" });

    // The server goes away; a file arrives; a new server reports it.
    await runner.stop();
    await running;
    client.close();
    await server.stop();
    await writeFile(join(folder, "while-down.txt"), "missed?");
    server = await start();
    client = new Client({ url: server.url });
    runner = client.runner("default", { tasks: [LogObject], concurrency: 4, logger: quiet, builtins: true });
    running = runner.runForever();
    const caught = await completed(task.id, 4);
    expect(seen.get(caught[3].id)).toMatchObject({ type: "CREATED", key: "while-down.txt", content: "missed?" });
    expect(caught).toHaveLength(4);

    await client.recurrentTasks().delete(task);
  });

  it("take S3 event notifications over HTTP (bare, SNS, MinIO), once per object version, with URL-decoded keys", async () => {
    const recurrent = client.recurrentTasks();
    const bucket = await recurrent.registerStorageLocation({ type: "s3", location: "inbox", endpoint: `http://127.0.0.1:${fauxqs.port}`, reconcileIntervalSeconds: 0 });
    expect(bucket.pushPath).toBe(`/events/s3/${bucket.id}`);
    const task = await recurrent.createRecurringStorageEventTask("s3-texts", "default", new LogObject({ label: "s3" }), { triggers: [[bucket, "**.txt"]] });
    await s3.send(new PutObjectCommand({ Bucket: "inbox", Key: "my file!.txt", Body: "from s3" }));
    await s3.send(new PutObjectCommand({ Bucket: "inbox", Key: "skip.bin", Body: "x" }));

    const record = (key: string, eTag: string) => ({
      eventName: "ObjectCreated:Put",
      eventTime: new Date().toISOString(),
      s3: { bucket: { name: "inbox" }, object: { key, eTag, size: 7, sequencer: "0A1" } },
    });
    const event = { Records: [record("my+file%21.txt", "etag-1"), record("skip.bin", "etag-2")] };
    const post = (body: unknown, query = `?token=${bucket.pushToken}`, headers: Record<string, string> = {}) =>
      fetch(`${server.url}${bucket.pushPath}${query}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });

    // Delivered three times, three ways: one job.
    expect((await post(event)).status).toBe(200);
    expect((await post({ Type: "Notification", Message: JSON.stringify(event) })).status).toBe(200);
    expect((await post({ EventName: "s3:ObjectCreated:Put", Key: "inbox/my+file%21.txt", Records: event.Records }, "", { authorization: `Bearer ${bucket.pushToken}` })).status).toBe(200);
    const jobs = await completed(task.id, 1);
    expect(jobs).toHaveLength(1);
    expect(seen.get(jobs[0].id)).toEqual({ type: "CREATED", key: "my file!.txt", content: "from s3", label: "s3" });

    // SNS subscription confirmation: the server visits the SubscribeURL only
    // when it is SNS's own (or on the allow-list the server was given), never a
    // URL of the caller's choosing.
    let confirmed = 0;
    const sns = createServer((req, res) => {
      if (req.url === "/confirm?token=abc") confirmed++;
      res.end("ok");
    });
    await new Promise<void>((r) => sns.listen(0, "127.0.0.1", r));
    const port = (sns.address() as { port: number }).port;
    const chosen = await post({ Type: "SubscriptionConfirmation", SubscribeURL: `http://127.0.0.1:${port}/confirm?token=abc` });
    expect(chosen.status).toBe(400);
    expect(((await chosen.json()) as { error: string }).error).toMatch(/SubscribeURL is not an SNS URL/);
    expect(confirmed).toBe(0);
    await unwrapSns({ Type: "SubscriptionConfirmation", SubscribeURL: `http://127.0.0.1:${port}/confirm?token=abc` }, [`http://127.0.0.1:${port}/`]);
    expect(confirmed).toBe(1);
    sns.close();

    // Bad requests start nothing and say why.
    const bad = async (res: Response, status: number, message: RegExp) => {
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: string }).error).toMatch(message);
    };
    const other = { Records: [record("other.txt", "etag-9")] };
    await bad(await post(other, "?token=wrong"), 401, /missing or wrong token/);
    await bad(await post("{not json"), 400, /not JSON/);
    await bad(await post({ Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: "elsewhere" }, object: { key: "x.txt", eTag: "e" } } }] }), 400, /for bucket "elsewhere", not inbox/);
    await bad(await fetch(`${server.url}/events/s3/987654?token=x`, { method: "POST", body: "{}" }), 404, /not a registered S3 location/);
    await new Promise((r) => setTimeout(r, 300));
    expect(await jobsOf(task.id)).toHaveLength(1);

    // The push token is in the registration's and a rotation's answers only;
    // after a rotation the old one is refused and the new one works.
    expect((await recurrent.storageLocations()).find((l) => l.id === bucket.id)!.pushToken).toBe("");
    const rotated = await recurrent.rotatePushToken(bucket);
    expect(rotated.pushToken).not.toBe(bucket.pushToken);
    await bad(await post(other), 401, /missing or wrong token/);
    expect((await post(other, `?token=${rotated.pushToken}`)).status).toBe(200);
    await recurrent.delete(task);
  });

  it("take GCS Pub/Sub push messages, authenticated by the location's token", async () => {
    const recurrent = client.recurrentTasks();
    const bucket = await recurrent.registerStorageLocation({ type: "gcs", location: "test-project:scenes", reconcileIntervalSeconds: 0 });
    const task = await recurrent.createRecurringStorageEventTask("gcs-scenes", "default", new LogObject({ label: "gcs" }), { triggers: [[bucket, "scenes/*.tif"]] });
    const stored = await gcs.putObject("scenes", "scenes/a.tif", Buffer.from("tiff bytes"));
    const push = (eventType: string, objectId: string, generation: string, token = bucket.pushToken, extra: Record<string, string> = {}) =>
      fetch(`${server.url}${bucket.pushPath}?token=${token}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          message: {
            attributes: { eventType, bucketId: "scenes", objectId, objectGeneration: generation, ...extra },
            data: Buffer.from(JSON.stringify({ name: objectId, bucket: "scenes", generation, metageneration: "1", updated: new Date().toISOString() })).toString("base64"),
            messageId: "m1",
          },
          subscription: "projects/test-project/subscriptions/sluice",
        }),
      });
    expect((await push("OBJECT_FINALIZE", "scenes/a.tif", String(stored.generation))).status).toBe(200);
    expect((await push("OBJECT_FINALIZE", "scenes/a.tif", String(stored.generation))).status).toBe(200);
    expect((await push("OBJECT_FINALIZE", "other/b.tif", "5")).status).toBe(200);
    expect((await push("OBJECT_DELETE", "scenes/a.tif", String(stored.generation))).status).toBe(200);
    expect((await push("OBJECT_FINALIZE", "scenes/a.tif", "7", "not-the-token")).status).toBe(401);
    const jobs = await completed(task.id, 1);
    expect(seen.get(jobs[0].id)).toEqual({ type: "CREATED", key: "scenes/a.tif", content: "tiff bytes", label: "gcs" });

    const overwritten = await gcs.putObject("scenes", "scenes/a.tif", Buffer.from("new tiff"));
    await push("OBJECT_FINALIZE", "scenes/a.tif", String(overwritten.generation), bucket.pushToken, { overwroteGeneration: String(stored.generation) });
    const both = await completed(task.id, 2);
    expect(seen.get(both[1].id)).toMatchObject({ type: "MODIFIED", content: "new tiff" });
    expect(both).toHaveLength(2);
    await recurrent.delete(task);
  });

  it("read S3 event notifications from an SQS queue", async () => {
    const recurrent = client.recurrentTasks();
    await s3.send(new CreateBucketCommand({ Bucket: "drops" }));
    // fauxqs names queues on sqs.REGION.localhost: resolve *.localhost in this process, as it advises.
    const restoreDns = interceptLocalhostDns();
    const { queueUrl } = fauxqs.createQueue("drops-events");
    const bucket = await recurrent.registerStorageLocation({
      type: "s3",
      location: "drops",
      endpoint: `http://127.0.0.1:${fauxqs.port}`,
      sqsQueueUrl: queueUrl,
      reconcileIntervalSeconds: 0,
    });
    const task = await recurrent.createRecurringStorageEventTask("sqs-texts", "default", new LogObject({ label: "sqs" }), { triggers: [[bucket, "*.txt"]] });
    await s3.send(new PutObjectCommand({ Bucket: "drops", Key: "via queue.txt", Body: "queued" }));
    // fauxqs does not send bucket notifications itself: send the message S3 would.
    const sqs = new SQSClient({ endpoint: `http://127.0.0.1:${fauxqs.port}`, region: "us-east-1" });
    const message = JSON.stringify({
      Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: "drops" }, object: { key: "via+queue.txt", eTag: "q1" } } }],
    });
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: message }));
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify({ Type: "Notification", Message: message }) }));
    const jobs = await completed(task.id, 1);
    expect(seen.get(jobs[0].id)).toEqual({ type: "CREATED", key: "via queue.txt", content: "queued", label: "sqs" });
    // Both deliveries were read and deleted from the queue; one job.
    await eventually(() => {
      const q = fauxqs.inspectQueue("drops-events")!;
      return q.messages.ready.length + q.messages.inflight.length === 0;
    });
    expect(await jobsOf(task.id)).toHaveLength(1);
    sqs.destroy();
    await recurrent.delete(task);
    await recurrent.deleteStorageLocation(bucket);
    restoreDns?.();
  });

  it("pick up objects whose notification was lost, by listing the location", async () => {
    const recurrent = client.recurrentTasks();
    await s3.send(new CreateBucketCommand({ Bucket: "lossy" }));
    const bucket = await recurrent.registerStorageLocation({ type: "s3", location: "lossy", endpoint: `http://127.0.0.1:${fauxqs.port}`, reconcileIntervalSeconds: 1 });
    const task = await recurrent.createRecurringStorageEventTask("lossy-texts", "default", new LogObject({ label: "listed" }), { triggers: [[bucket, "**.txt"]] });
    await s3.send(new PutObjectCommand({ Bucket: "lossy", Key: "nobody/told/us.txt", Body: "found by listing" }));
    const jobs = await completed(task.id, 1);
    expect(seen.get(jobs[0].id)).toEqual({ type: "CREATED", key: "nobody/told/us.txt", content: "found by listing", label: "listed" });
    // Later listings find the same version again and start nothing more.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await jobsOf(task.id)).toHaveLength(1);
    await recurrent.delete(task);
  });

  it("take a folder's events from `sluice watch` beside it, which catches up after a restart", async () => {
    const env = { SLUICE_URL: server.url };
    const outside = await mkdtemp(join(tmpdir(), "sluice-watched-"));
    const registered = await sluice(["storage", "register", outside, "--type", "fs", "--external-watcher", "--json"], env);
    expect(registered.code).toBe(0);
    const location = JSON.parse(registered.stdout) as { id: string; pushToken: string; reconcileIntervalSeconds: number };
    expect(location.reconcileIntervalSeconds).toBe(0);
    const created = await sluice(
      ["recurrent", "create-storage", "watched", "--task", "LogObject@v1.0", "--input", '{"label":"watch"}', "--trigger", `${location.id}:**.txt`, "--json"],
      env,
    );
    expect(created.code).toBe(0);
    const task = JSON.parse(created.stdout) as { id: string };
    expect((await sluice(["storage", "list"], env)).stdout).toContain(outside);

    const stateDir = join(dataDir, "watch-state");
    const watch = async () => {
      const w = spawnNode([join(ROOT, "bin", "sluice.js"), "watch", outside, "--server", server.url, "--location", location.id, "--token", location.pushToken, "--state-dir", stateDir]);
      await w.waitFor(/watching/);
      return w;
    };
    let watcher = await watch();
    await writeFile(join(outside, "one.txt"), "first");
    const first = await completed(task.id, 1);
    expect(seen.get(first[0].id)).toMatchObject({ key: "one.txt", content: "first", label: "watch" });
    watcher.process.kill("SIGTERM");
    expect(await watcher.exited).toBe(0);

    await writeFile(join(outside, "two.txt"), "while the watcher was down");
    watcher = await watch();
    const both = await completed(task.id, 2);
    expect(seen.get(both[1].id)).toMatchObject({ key: "two.txt", content: "while the watcher was down" });
    watcher.process.kill("SIGTERM");
    await watcher.exited;

    const wrongToken = await fetch(`${server.url}/sluice.v1.StorageService/ReportObjectEvents`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ locationId: location.id, token: "nope", changes: [{ key: "x.txt", version: "1" }] }),
    });
    expect(wrongToken.status).toBe(403);
    await client.recurrentTasks().delete(task.id);
    await rm(outside, { recursive: true, force: true });
  });

  it("stop starting jobs when deleted; jobs already queued stay queued and can run", async () => {
    class Unrun extends StorageEventTask {
      static identifier = { name: "Unrun", version: "v1.0" };
      execute() {}
    }
    const recurrent = client.recurrentTasks();
    const location = (await recurrent.storageLocations()).find((l) => l.type === "fs" && l.location === folder)!;
    const task = await recurrent.createRecurringStorageEventTask("to-delete", "default", new Unrun(), { triggers: [[location, "deleted/*"]] });
    await mkdir(join(folder, "deleted"));
    await writeFile(join(folder, "deleted", "before.txt"), "x");
    const [queued] = await eventually(async () => {
      const jobs = await jobsOf(task.id);
      return jobs.length === 1 ? jobs : undefined;
    });
    expect(queued.state).toBe("queued");
    await recurrent.delete(task);
    await writeFile(join(folder, "deleted", "after.txt"), "y");
    await new Promise((r) => setTimeout(r, 1_000));
    const named = (await client.jobs().list({ name: "to-delete" })).map((j) => `${j.name} ${j.state}`);
    expect(named).toEqual(["to-delete deleted/before.txt queued"]);
    await client.runner("default", { tasks: [Unrun], logger: quiet }).runAll();
    expect((await client.jobs().get(queued.id)).state).toBe("completed");
  });

  it("write scheduled objects to a registered bucket", async () => {
    const bucket = (await client.recurrentTasks().storageLocations()).find((l) => l.type === "s3" && l.location === "inbox")!;
    const job = await client.jobs().scheduleObjectWrite({ location: bucket, key: "scheduled/hello.txt", content: "at a set time", at: new Date(Date.now() + 1_000) });
    expect(job.state).toBe("scheduled");
    await eventually(async () => (await client.jobs().get(job.id)).state === "completed");
    const res = await s3.send(new GetObjectCommand({ Bucket: "inbox", Key: "scheduled/hello.txt" }));
    expect(await res.Body!.transformToString()).toBe("at a set time");
  });

  it("are submitted as normal jobs only with a trigger from once()", async () => {
    const recurrent = client.recurrentTasks();
    const location = (await recurrent.storageLocations()).find((l) => l.type === "fs") as StorageLocation;
    await expect(client.jobs().submit("untriggered", new LogObject({ label: "x" }))).rejects.toThrow(
      /cannot be submitted without being triggered: use task\.once\(location, key\)/,
    );
    await writeFile(join(folder, "manual.txt"), "by hand");
    const job = await client.jobs().submit("manual", new LogObject({ label: "once" }).once(location, "manual.txt"));
    await eventually(async () => (await client.jobs().get(job.id)).state === "completed");
    expect(seen.get(job.id)).toEqual({ type: "CREATED", key: "manual.txt", content: "by hand", label: "once" });
    expect((await client.jobs().get(job.id)).tasks[0]).toMatchObject({ identifier: { name: "LogObject", version: "v1.0" } });
  });
});
