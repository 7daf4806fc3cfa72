import { existsSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { join } from "node:path";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { type FauxqsServer, startFauxqs } from "fauxqs";
import { afterAll, describe, expect, it } from "vitest";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ClusterService } from "../gen/sluice/v1/cluster_service_pb.js";
import { FileService } from "../gen/sluice/v1/file_service_pb.js";
import { StorageType } from "../gen/sluice/v1/storage_pb.js";
import { JobService } from "../gen/sluice/v1/job_service_pb.js";
import { RecurrentTaskService } from "../gen/sluice/v1/recurrent_task_service_pb.js";
import { RunnerService } from "../gen/sluice/v1/runner_service_pb.js";
import { StorageService } from "../gen/sluice/v1/storage_service_pb.js";
import { TokenService } from "../gen/sluice/v1/token_service_pb.js";
import { ObservabilityService } from "../gen/sluice/v1/observability_service_pb.js";
import { Client, Task, type TokenScopeName } from "../runner/index.js";
import { buildServer } from "../server/build-server.js";
import { eventually, quiet, useSandbox } from "./support/harness.js";
import { openSession } from "./support/session.js";

const ADMIN = "a-static-admin-secret-for-tests";

class Noop extends Task {
  static identifier = { name: "Noop", version: "v1.0" };
  execute() {}
}

/** Calls any method with an empty request through a client holding `token`; the error code, or "ok". */
async function call(url: string, token: string | undefined, service: DescService, method: DescMethod): Promise<string> {
  const client = new Client({ url, token: token ?? "" });
  // biome-ignore lint: a method of any kind, called generically
  const api = createClient(service, client.transport) as any;
  try {
    const fn = api[method.localName].bind(api);
    if (method.methodKind === "unary") await fn({});
    else if (method.methodKind === "server_streaming") for await (const _ of fn({})) break;
    else {
      async function* one() {
        yield {};
      }
      for await (const _ of fn(one())) break;
    }
    return "ok";
  } catch (e) {
    return Code[ConnectError.from(e).code];
  } finally {
    client.close();
  }
}

const SERVICES = [JobService, ClusterService, RecurrentTaskService, StorageService, RunnerService, TokenService, FileService, ObservabilityService];

/** What each scope may call, by the method's name (the rule the server applies, written out). */
function needed(service: DescService, method: DescMethod): TokenScopeName {
  const name = `${service.typeName}/${method.name}`;
  if (/JobService\/(Submit|Cancel|Retry)/.test(name) || name.endsWith("ReportObjectEvents")) return "submit";
  if (name.endsWith("RunnerService/Session")) return "runner";
  if (name.endsWith("ObservabilityService/TailJobLogs")) return "read";
  if (/FileService\/(SubmitFileWorkflow|StagePaths)$/.test(name)) return "submit";
  if (/FileService\/(ListTaskPaths|ReportPathStates)$/.test(name)) return "runner";
  if (service !== TokenService && /^(Get|List|Count)/.test(method.name)) return "read";
  return "admin";
}

const grants: Record<TokenScopeName, TokenScopeName[]> = {
  read: ["read"],
  submit: ["submit", "read"],
  runner: ["runner"],
  admin: ["admin", "submit", "runner", "read"],
};

describe("a server that needs tokens", () => {
  const box = useSandbox({ auth: "required", adminToken: ADMIN });

  it("lets the job hook take only an attempt's own credentials, never a bearer token", async () => {
    const res = await fetch(`${box.url}/job-hook/status`, { method: "POST", headers: { authorization: `Bearer ${ADMIN}` }, body: "{}" });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toMatch(/X-Job-Id, X-Job-Time and X-Job-Hash are required/);
  });

  it("answers every RPC Unauthenticated without a token, with a bad one and with a revoked one, and checks each scope", async () => {
    const admin = new Client({ url: box.url, token: ADMIN }).tokens();
    const scoped = {} as Record<TokenScopeName, string>;
    for (const scope of ["read", "submit", "runner", "admin"] as const) scoped[scope] = (await admin.create(`${scope} token`, [scope])).secret;
    const revoked = await admin.create("to revoke", ["admin"]);
    await admin.revoke(revoked.id);
    const forged = `${revoked.id}.${"A".repeat(43)}`;

    const rows: string[] = [];
    for (const service of SERVICES) {
      for (const method of service.methods) {
        const what = `${service.typeName}/${method.name}`;
        for (const [label, token] of [["none", undefined], ["bad", "not-a-token"], ["forged", forged], ["revoked", revoked.secret]] as const) {
          const code = await call(box.url, token, service, method);
          if (code !== "Unauthenticated") rows.push(`${what} with ${label} token: ${code}`);
        }
        for (const scope of ["read", "submit", "runner", "admin"] as const) {
          const code = await call(box.url, scoped[scope], service, method);
          const allowed = grants[scope].includes(needed(service, method));
          if (allowed && (code === "PermissionDenied" || code === "Unauthenticated")) rows.push(`${what} with ${scope}: ${code}, expected it allowed`);
          if (!allowed && code !== "PermissionDenied") rows.push(`${what} with ${scope}: ${code}, expected PermissionDenied`);
        }
      }
    }
    expect(rows).toEqual([]);
    // Health checks and reflection stay open.
    expect(await call(box.url, undefined, Health, Health.methods.find((m) => m.name === "Check")!)).not.toBe("Unauthenticated");
    expect(await call(box.url, undefined, ServerReflection, ServerReflection.methods[0])).not.toBe("Unauthenticated");
  });

  it("says which scope a call needs, and lists tokens without their secrets", async () => {
    const admin = new Client({ url: box.url, token: ADMIN });
    const reader = await admin.tokens().create("reader", ["read"]);
    const client = new Client({ url: box.url, token: reader.secret });
    const err = await client
      .jobs()
      .submit("x", new Noop())
      .then(
        () => undefined,
        (e) => ConnectError.from(e),
      );
    expect(err?.code).toBe(Code.PermissionDenied);
    expect(err?.rawMessage).toMatch(/SubmitStream needs a token with the submit scope; this one has read/);
    const listed = await admin.tokens().list();
    expect(JSON.stringify(listed)).not.toContain(reader.secret.split(".")[1]);
    const [{ hash }] = await box.sql<{ hash: Buffer }[]>`SELECT secret_hash AS hash FROM api_tokens WHERE id = ${reader.id}`;
    expect(hash.toString("utf8")).not.toContain(reader.secret.split(".")[1]);
    client.close();
    admin.close();
  });

  it("ends the open streams of a revoked token within seconds; a runner token is held to its clusters", async () => {
    const admin = new Client({ url: box.url, token: ADMIN });
    await admin.clusters().create("gpu");
    const runnerToken = await admin.tokens().create("gpu runners", ["runner"], { clusters: ["gpu"] });
    const client = new Client({ url: box.url, token: runnerToken.secret });
    const api = createClient(RunnerService, client.transport);
    const elsewhere = openSession(api, { cluster: "default", tasks: [{ name: "Noop", version: "v1.0" }], concurrency: 1 });
    const refused = await elsewhere.ended;
    expect(refused?.code).toBe(Code.PermissionDenied);
    expect(refused?.rawMessage).toMatch(/may take work from gpu, not from cluster "default"/);

    // Nor may it read the paths of a file task of another cluster, or report on them.
    const { job: fileJob } = await admin.files().submitWorkflow("files elsewhere", [Noop], { paths: ["/a"] });
    const fileTaskId = (await admin.jobs().get(fileJob.id)).tasks[0].id;
    const files = createClient(FileService, client.transport);
    const held = { taskId: fileTaskId, lease: 1, runnerId: crypto.randomUUID() };
    for (const call of [() => files.listTaskPaths(held), () => files.reportPathStates({ ...held, paths: ["/a"], states: [1] })]) {
      const e = await call().then(() => null, (x) => ConnectError.from(x));
      expect([e?.code, e?.rawMessage]).toEqual([Code.PermissionDenied, expect.stringMatching(/may take work from gpu, not from cluster "default"/)]);
    }
    expect((await admin.files().job(fileJob.id)).tasks[0].summary.processed).toBe(0);
    await admin.jobs().cancel(fileJob.id);

    const session = openSession(api, { cluster: "gpu", tasks: [{ name: "Noop", version: "v1.0" }], concurrency: 1 });
    await session.until("started");
    await admin.tokens().revoke(runnerToken.id);
    const ended = await session.ended;
    expect(ended?.code).toBe(Code.Unauthenticated);
    expect(ended?.rawMessage).toMatch(/was revoked/);
    client.close();
    admin.close();
  });

  it("refuses a result from a runner that does not hold the lease, whatever it guesses", async () => {
    const admin = new Client({ url: box.url, token: ADMIN });
    const job = await admin.jobs().submit("held", new Noop());
    const api = createClient(RunnerService, admin.transport);
    const holder = openSession(api, { tasks: [{ name: "Noop", version: "v1.0" }], concurrency: 1 });
    const a = await holder.until("assignment");
    // Another session, another runner id, the right task, job and lease number.
    const thief = openSession(api, { tasks: [{ name: "Nothing", version: "v1.0" }], concurrency: 1 });
    const answer = await thief.record({ results: [{ task: { taskId: a.ids[0], lease: a.leases[0] }, jobId: a.jobIds[0], outcome: { case: "failed", value: { message: "forged", stack: "" } } }] });
    expect(answer.refused).toEqual([expect.objectContaining({ code: "permission_denied", message: expect.stringMatching(/leased to another runner/) })]);
    const extended = await thief.extend([{ taskId: a.ids[0], lease: a.leases[0] }]);
    expect(extended.lost).toHaveLength(1);
    expect((await admin.jobs().get(job.id)).tasks[0]).toMatchObject({ state: "running", failures: 0 });
    expect((await holder.record({ computed: { taskIds: a.ids, leases: a.leases, jobIds: a.jobIds } })).refused).toEqual([]);
    await eventually(async () => (await admin.jobs().get(job.id)).state === "completed", 5_000, "the job to complete");
    holder.close();
    thief.close();
    admin.close();
  });
});

describe("a long stream of a token's holder", () => {
  const box = useSandbox({ auth: "required", adminToken: ADMIN });

  class Large extends Task<{ blob: string }> {
    static identifier = { name: "Large", version: "v1.0" };
    execute() {}
  }

  // The server watches each stream for its token's revocation. Its memory
  // must not grow with what the stream has sent: a runner's session lives for
  // days and carries every task input the runner ever receives.
  it("keeps nothing of what an open runner session was sent", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const heap = () => {
      gc();
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const admin = new Client({ url: box.url, token: ADMIN });
    const runnerToken = await admin.tokens().create("a long session", ["runner"]);
    const client = new Client({ url: box.url, token: runnerToken.secret });
    const session = openSession(createClient(RunnerService, client.transport), { tasks: [{ name: "Large", version: "v1.0" }], concurrency: 20 });
    await session.until("started");

    /** Submits `n` tasks of 100 kB each and runs them on the session; returns when all are recorded. */
    const runBatch = async (n: number) => {
      const jobs = admin.jobs();
      await Promise.all(Array.from({ length: n }, (_, i) => jobs.submit(`large ${i}`, new Large({ blob: String(i % 10).repeat(100_000) }))));
      for (let done = 0; done < n; ) {
        const a = await session.until("assignment");
        expect((await session.record({ computed: { taskIds: a.ids, leases: a.leases, jobIds: a.jobIds } })).refused).toEqual([]);
        done += a.ids.length;
      }
    };
    await runBatch(20);
    const before = heap();
    await runBatch(300);
    const grown = heap() - before;
    // 300 inputs of 100 kB went down the session: 30 MB held if it kept them.
    expect(grown).toBeLessThan(10_000_000);
    session.close();
    client.close();
    admin.close();
  });
});

describe("a server's first start with tokens needed", () => {
  const box = useSandbox({ auth: "required" });

  it("makes an admin token that works, when none exists", async () => {
    const [{ n }] = await box.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM api_tokens WHERE 'admin' = ANY(scopes) AND name = 'bootstrap admin'`;
    expect(n).toBe(1);
  });
});

describe("a runner", () => {
  const box = useSandbox();

  it("runs a built-in task only when it opted in: a submitted object write touches nothing on the others", async () => {
    const folder = await mkdtemp(join(tmpdir(), "sluice-builtins-"));
    const location = await box.client.recurrentTasks().registerStorageLocation({ type: "fs", location: folder });
    const job = await box.client.jobs().scheduleObjectWrite({ location, key: "owned.txt", content: "x", at: new Date() });
    await box.client.runner("default", { tasks: [Noop], logger: quiet }).runAll();
    expect(existsSync(join(folder, "owned.txt"))).toBe(false);
    expect((await box.client.jobs().get(job.id)).state).toBe("queued");
    await box.client.runner("default", { tasks: [Noop], logger: quiet, builtins: true }).runAll();
    expect(await readFile(join(folder, "owned.txt"), "utf8")).toBe("x");
  });

  it("writes an object only to the folder the server registered under the id a write names, never one the submitter describes", async () => {
    const folder = await mkdtemp(join(tmpdir(), "sluice-registered-write-"));
    const elsewhere = await mkdtemp(join(tmpdir(), "sluice-elsewhere-"));
    const location = await box.client.recurrentTasks().registerStorageLocation({ type: "fs", location: folder });
    const api = createClient(JobService, box.client.transport);
    const write = (id: string, input: object) => ({
      identifier: { name: "sluice.WriteObject", version: "v2.0" },
      input: new TextEncoder().encode(JSON.stringify(input)),
      trigger: { key: "owned.txt", location: { id, type: StorageType.FS, location: elsewhere } },
    });
    const content = Buffer.from("written").toString("base64");
    const refused = await api.submitJob({ name: "write", tasks: [write("424242", { content })] }).then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(refused?.code).toBe(Code.NotFound);
    const { job } = await api.submitJob({ name: "write", tasks: [write(location.id, { content })] });
    await box.client.runner("default", { tasks: [Noop], logger: quiet, builtins: true }).runAll();
    expect((await box.client.jobs().get(job!.id)).state).toBe("completed");
    expect(await readFile(join(folder, "owned.txt"), "utf8")).toBe("written");
    expect(existsSync(join(elsewhere, "owned.txt"))).toBe(false);
  });
});

describe("a storage event task submitted by hand", () => {
  const box = useSandbox();

  it("reads through the storage location the server registered under the id it names, never one the submitter describes", async () => {
    const folder = await mkdtemp(join(tmpdir(), "sluice-registered-"));
    const location = await box.client.recurrentTasks().registerStorageLocation({ type: "fs", location: folder });
    const trigger = (id: string) => ({ key: "passwd", location: { id, type: StorageType.FS, location: "/etc" } });
    const task = { identifier: { name: "Peek", version: "v1.0" }, input: new TextEncoder().encode("{}") };
    const api = createClient(JobService, box.client.transport);
    const unknown = await api.submitJob({ name: "peek", tasks: [{ ...task, trigger: trigger("424242") }] }).then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(unknown?.code).toBe(Code.NotFound);
    expect(unknown?.rawMessage).toMatch(/trigger.location.id 424242 is not a registered storage location/);
    // The registered id with another folder described: the task gets the registered folder.
    const { job } = await api.submitJob({ name: "peek", tasks: [{ ...task, trigger: trigger(location.id) }] });
    const stored = await api.getJob({ id: job!.id });
    expect(stored.tasks[0].trigger?.location).toMatchObject({ id: location.id, location: folder });
  });
});

describe("folder storage locations", () => {
  let root: string;
  const box = useSandbox({ fsRoots: [] });
  it("are registered only under the roots the server allows, judged by their real path", async () => {
    root = await mkdtemp(join(tmpdir(), "sluice-root-"));
    const outside = await mkdtemp(join(tmpdir(), "sluice-outside-"));
    const { symlink, mkdir } = await import("node:fs/promises");
    await mkdir(join(root, "inside"));
    await symlink(outside, join(root, "escape"));
    const server = await buildServer({ host: "127.0.0.1", port: 0, databaseUrl: box.databaseUrl, fsRoots: [root] });
    const client = new Client({ url: server.url });
    try {
      const register = (location: string) =>
        client
          .recurrentTasks()
          .registerStorageLocation({ type: "fs", location })
          .then(
            (l) => l.location,
            (e) => ConnectError.from(e),
          );
      expect(await register(join(root, "inside"))).toBe(join(root, "inside"));
      for (const refused of ["/etc", outside, join(root, "escape")]) {
        const err = await register(refused);
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.PermissionDenied);
        expect((err as ConnectError).rawMessage).toMatch(/is outside the folders this server allows .*SLUICE_FS_ROOTS/);
      }
    } finally {
      client.close();
      await server.stop();
    }
  });
});

describe("a folder location read through the SDK", () => {
  const box = useSandbox();

  it("refuses a key that leads out of the folder through a symbolic link", async () => {
    const folder = await mkdtemp(join(tmpdir(), "sluice-read-"));
    const outside = await mkdtemp(join(tmpdir(), "sluice-secret-"));
    const { symlink, writeFile } = await import("node:fs/promises");
    await writeFile(join(folder, "plain.txt"), "inside");
    await writeFile(join(outside, "secret.txt"), "secret");
    await symlink(join(outside, "secret.txt"), join(folder, "link.txt"));
    const location = await box.client.recurrentTasks().registerStorageLocation({ type: "fs", location: folder });
    expect(Buffer.from(await location.read("plain.txt")).toString()).toBe("inside");
    await expect(location.read("link.txt")).rejects.toThrow(/leads out of .* through a symbolic link/);
    await expect(location.read("../secret.txt")).rejects.toThrow(/is invalid/);
  });
});

describe("the HTTP endpoints beside the API of a server that needs tokens", () => {
  const box = useSandbox({ auth: "required", adminToken: ADMIN });
  let fauxqs: FauxqsServer;
  afterAll(async () => {
    await fauxqs?.stop();
  });

  it("take webhook events only with the location's push token, never an API token; serve the console's files, which hold no data, to anyone", async () => {
    // The server reaches the bucket with the AWS SDK's usual credential chain.
    process.env.AWS_ACCESS_KEY_ID ??= "test";
    process.env.AWS_SECRET_ACCESS_KEY ??= "test";
    fauxqs = await startFauxqs({ port: 0, logger: false });
    const s3 = new S3Client({ endpoint: `http://127.0.0.1:${fauxqs.port}`, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "x", secretAccessKey: "x" } });
    await s3.send(new CreateBucketCommand({ Bucket: "hooked" }));
    s3.destroy();
    const admin = new Client({ url: box.url, token: ADMIN });
    const location = await admin
      .recurrentTasks()
      .registerStorageLocation({ type: "s3", location: "hooked", endpoint: `http://127.0.0.1:${fauxqs.port}`, reconcileIntervalSeconds: 0 });
    const event = JSON.stringify({ Records: [{ eventName: "ObjectCreated:Put", eventTime: "2026-12-04T10:00:00.000Z", s3: { bucket: { name: "hooked" }, object: { key: "a.txt", eTag: "e1" } } }] });
    const post = (auth: Record<string, string>, query = "") => fetch(`${box.url}/events/s3/${location.id}${query}`, { method: "POST", body: event, headers: auth });
    const statuses = {
      none: (await post({})).status,
      bad: (await post({}, "?token=wrong")).status,
      apiAdmin: (await post({ authorization: `Bearer ${ADMIN}` })).status,
      push: (await post({}, `?token=${location.pushToken}`)).status,
    };
    expect(statuses).toEqual({ none: 401, bad: 401, apiAdmin: 401, push: 200 });

    const page = await fetch(`${box.url}/ui/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<html");
    admin.close();
  });
});
