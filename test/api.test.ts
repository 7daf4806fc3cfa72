import { openSession } from "./support/session.js";
import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { StorageEventType, StorageType } from "../gen/sluice/v1/storage_pb.js";
import { Task } from "../runner/index.js";
import { submitJobs } from "../server/store/submit-job.js";
import { ROOT, noopRows, useSandbox } from "./support/harness.js";

const run = promisify(execFile);
const buf = join(ROOT, "node_modules", ".bin", "buf");
const json = (o: object) => new TextEncoder().encode(JSON.stringify(o));

class Noop extends Task {
  static identifier = { name: "Noop", version: "v1.0" };
  execute() {}
}

describe("the API on one port", () => {
  const box = useSandbox();

  it("lists its services by gRPC reflection (v1 and v1alpha) over cleartext HTTP/2", async () => {
    for (const protocol of ["grpc-v1", "grpc-v1alpha"]) {
      const { stdout } = await run(buf, [
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--reflect-protocol",
        protocol,
        "--list-services",
        box.url,
      ]);
      const services = stdout.trim().split("\n").sort();
      expect(services).toEqual(
        expect.arrayContaining([
          "grpc.health.v1.Health",
          "sluice.v1.ClusterService",
          "sluice.v1.JobService",
          "sluice.v1.RunnerService",
        ]),
      );
    }
    const { stdout: methods } = await run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", box.url]);
    expect(methods).toContain("sluice.v1.JobService/SubmitJob");
  });

  it("answers a JobService call made by buf curl over gRPC, with the schema from reflection", async () => {
    const job = await box.client.jobs().submit("by-sdk", new Noop());
    const { stdout } = await run(buf, [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--data",
      JSON.stringify({ id: job.id }),
      `${box.url}/sluice.v1.JobService/GetJob`,
    ]);
    const res = JSON.parse(stdout);
    expect(res.job).toMatchObject({ id: job.id, name: "by-sdk", state: "JOB_STATE_QUEUED", cluster: "default" });
    expect(res.tasks[0].identifier).toEqual({ name: "Noop", version: "v1.0" });
  });

  it("reports health over gRPC", async () => {
    const { stdout } = await run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", `${box.url}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });

  it("takes plain JSON over HTTP/1.1 (the Connect protocol)", async () => {
    const submit = await fetch(`${box.url}/sluice.v1.JobService/SubmitJob`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        name: "by-curl",
        tasks: [{ identifier: { name: "Noop", version: "v1.0" }, input: Buffer.from("{}").toString("base64") }],
      }),
    });
    expect(submit.status).toBe(200);
    const { job } = (await submit.json()) as { job: { id: string; state: string } };
    expect(job.state).toBe("JOB_STATE_QUEUED");

    const get = await fetch(`${box.url}/sluice.v1.JobService/GetJob`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: job.id }),
    });
    expect(((await get.json()) as { job: object }).job).toMatchObject({ id: job.id, name: "by-curl" });

    const missing = await fetch(`${box.url}/sluice.v1.JobService/GetJob`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: "987654321" }),
    });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ code: "not_found", message: "job 987654321 does not exist" });
  });
});

describe("what a task is submitted with", () => {
  const box = useSandbox();

  it("comes back byte for byte, whatever characters it holds", async () => {
    const folder = await mkdtemp(join(tmpdir(), "sluice-odd-"));
    const location = await box.client.recurrentTasks().registerStorageLocation({ type: "fs", location: folder });
    // Text that array literals and JSON would have to escape, and inputs (JSON,
    // as inputs are) with escapes, a NUL escape and text beyond ASCII.
    const odd = ['quote " and backslash \\ ', "{braces, commas}", "NULL", "", "  spaced  ", "ünïcødé ✓ 🚀", "line\nbreak\ttab"];
    const text = (t: string) => new TextEncoder().encode(t);
    const inputs = [text(' [ "5B\u00cb" , null ] '), text('{"nul":"\\u0000"}'), text('"ÿþ\\"\\\\"'), json({ s: odd[0] })];
    const tasks = odd.map((display, i) => ({
      identifier: { name: "Noop", version: "v1.0" },
      input: inputs[i % inputs.length],
      display,
      trigger: {
        type: StorageEventType.MODIFIED,
        key: `folder/${display}/object "${i}".txt`,
        version: odd[(i + 1) % odd.length],
        location: { id: location.id, type: StorageType.FS, location: folder },
      },
    }));
    for (const submit of [() => box.api.jobs.submitJob({ name: "odd", tasks }), () => box.api.jobs.submitJob({ name: "odd", tasks: tasks.slice(0, 1) })]) {
      const { job } = await submit();
      const got = await box.api.jobs.getJob({ id: job!.id });
      const sent = tasks.slice(0, got.tasks.length);
      expect(got.tasks.map((t) => [t.display, Buffer.from(t.input).toString("hex"), t.trigger?.key, t.trigger?.version, t.trigger?.location?.location])).toEqual(
        sent.map((t) => [t.display, Buffer.from(t.input).toString("hex"), t.trigger.key, t.trigger.version, t.trigger.location.location]),
      );
    }
  });

  it("keeps each task's optional fields to that task, set on one task or on none", async () => {
    const plain = { identifier: { name: "Noop", version: "v1.0" }, input: json({}) };
    const dressed = { ...plain, display: "the middle one", maxRetries: 3, timeout: { seconds: 60n, nanos: 0 } };
    for (const tasks of [[plain, dressed, plain], [plain, plain]]) {
      const { job } = await box.api.jobs.submitJob({ name: "optional fields", tasks });
      const got = await box.api.jobs.getJob({ id: job!.id });
      expect(got.tasks.map((t) => [t.display, t.maxRetries])).toEqual(tasks.map((t) => ["display" in t ? t.display : "", "maxRetries" in t ? t.maxRetries : 0]));
      const limits = await box.sql<{ timeout_ms: number | null }[]>`SELECT timeout_ms FROM tasks WHERE job_id = ${job!.id} ORDER BY id`;
      expect(limits.map((l) => l.timeout_ms)).toEqual(tasks.map((t) => ("timeout" in t ? 60_000 : null)));
    }
  });

  it("is stored byte for byte by the insert, an input whose base64 is NULL included", async () => {
    // The API takes only JSON input; the insert itself keeps any bytes, and
    // "NULL" (the word for a missing element of an array) is base64 too.
    const inputs = [new Uint8Array([0x35, 0x42, 0xcb]), new Uint8Array([0]), new Uint8Array([0xff, 0xfe, 0x22, 0x5c])];
    const rows = noopRows(inputs.length).map((r, i) => ({ ...r, input: inputs[i] }));
    const submitted = await submitJobs(box.sql, [{ name: "bytes", clusterId: 1, plan: { rows, depFrom: [], depTo: [] } }], 30_000);
    if (!Array.isArray(submitted)) throw new Error("the job was not inserted");
    const [job] = submitted;
    const stored = await box.sql<{ input: Buffer }[]>`SELECT input FROM tasks WHERE job_id = ${job.id} ORDER BY id`;
    expect(stored.map((s) => s.input.toString("hex"))).toEqual(inputs.map((i) => Buffer.from(i).toString("hex")));
  });
});

describe("submits made at once through the SDK", () => {
  const box = useSandbox();

  class Tagged extends Task<{ n: number }> {
    static identifier = { name: "Tagged", version: "v1.0" };
    static seen: number[] = [];
    execute() {
      Tagged.seen.push(this.input.n);
    }
  }

  it("each get their own job or their own error, and every job runs once", async () => {
    const jobs = box.client.jobs();
    const n = 300;
    const settled = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        i === 150 ? jobs.submit("lost", new Tagged({ n: i }), { cluster: "nowhere" }) : jobs.submit(`job ${i}`, new Tagged({ n: i })),
      ),
    );
    const lost = settled[150];
    expect(lost.status).toBe("rejected");
    const err = ConnectError.from((lost as PromiseRejectedResult).reason);
    expect(Code[err.code]).toBe("NotFound");
    expect(err.rawMessage).toMatch(/cluster "nowhere" does not exist/);
    const made = settled.flatMap((s, i) => (s.status === "fulfilled" ? [{ i, job: s.value }] : []));
    expect(made.length).toBe(n - 1);
    for (const { i, job } of made) expect(job.name).toBe(`job ${i}`);
    expect(new Set(made.map((m) => m.job.id)).size).toBe(n - 1);
    expect((await jobs.get(made[200].job.id)).tasks[0].input).toEqual({ n: made[200].i });

    await box.client.runner("default", { tasks: [Tagged], concurrency: 8 }).runAll();
    expect([...Tagged.seen].sort((a, b) => a - b)).toEqual(made.map((m) => m.i));
  });
});

describe("bad input gets a clear error and changes nothing", () => {
  const box = useSandbox();

  async function counts() {
    const [row] = await box.sql<{ jobs: number; tasks: number }[]>`
      SELECT (SELECT count(*) FROM jobs)::int AS jobs, (SELECT count(*) FROM tasks)::int AS tasks`;
    return row;
  }

  async function refused(call: () => Promise<unknown>, code: Code, message: RegExp) {
    const before = await counts();
    const err = await call().then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(err, "the call should have been refused").toBeInstanceOf(ConnectError);
    expect(Code[err!.code]).toBe(Code[code]);
    expect(err!.rawMessage).toMatch(message);
    expect(await counts()).toEqual(before);
  }

  const task = (over: object = {}) => ({ identifier: { name: "Noop", version: "v1.0" }, input: json({}), ...over });

  it("an unknown cluster", async () => {
    await refused(() => box.client.jobs().submit("j", new Noop(), { cluster: "nowhere" }), Code.NotFound, /cluster "nowhere" does not exist: create it first/);
  });

  it("an unknown job", async () => {
    await refused(() => box.client.jobs().get("424242"), Code.NotFound, /job 424242 does not exist/);
    await refused(() => box.client.jobs().cancel("424242"), Code.NotFound, /job 424242 does not exist/);
    await refused(() => box.client.jobs().get("abc"), Code.InvalidArgument, /must be a positive decimal number/);
  });

  it("an empty task input", async () => {
    await refused(() => box.api.jobs.submitJob({ name: "j", tasks: [task({ input: new Uint8Array() })] }), Code.InvalidArgument, /input is empty/);
  });

  it("text PostgreSQL cannot store: a NUL character in a job name, a display name or a trigger's key", async () => {
    await refused(() => box.api.jobs.submitJob({ name: "j\u0000", tasks: [task()] }), Code.InvalidArgument, /job name contains a NUL character/);
    await refused(
      () => box.api.jobs.submitJob({ name: "j", tasks: [task(), task({ display: "a\u0000b" })] }),
      Code.InvalidArgument,
      /tasks\[1\]\.display contains a NUL character \(U\+0000\), which cannot be stored; remove it/,
    );
    const trigger = { key: "in/\u0000.txt", location: { id: "1", type: StorageType.FS, location: "/data" } };
    await refused(() => box.api.jobs.submitJob({ name: "j", tasks: [task({ trigger })] }), Code.InvalidArgument, /tasks\[0\]\.trigger\.key contains a NUL/);
  });

  it("an oversized task input, stating the limit", async () => {
    const big = new Uint8Array(1024 * 1024 + 1).fill(0x20);
    await refused(
      () => box.api.jobs.submitJob({ name: "j", tasks: [task({ input: big })] }),
      Code.InvalidArgument,
      /input is 1048577 bytes; the limit is 1048576 bytes \(1 MiB\)/,
    );
  });

  it("a cycle in dependsOn", async () => {
    await refused(
      () => box.api.jobs.submitJob({ name: "j", tasks: [task(), task({ dependsOn: [2] }), task({ dependsOn: [1] })] }),
      Code.InvalidArgument,
      /depends_on forms a cycle among tasks 1, 2/,
    );
  });

  it("an unknown task in dependsOn", async () => {
    await refused(
      () => box.api.jobs.submitJob({ name: "j", tasks: [task(), task({ dependsOn: [7] })] }),
      Code.InvalidArgument,
      /depends_on names task 7, but only 2 tasks were submitted together/,
    );
  });

  it("an invalid identifier or version", async () => {
    await refused(
      () => box.api.jobs.submitJob({ name: "j", tasks: [task({ identifier: { name: "has space", version: "v1.0" } })] }),
      Code.InvalidArgument,
      /task name "has space" is invalid/,
    );
    await refused(
      () => box.api.jobs.submitJob({ name: "j", tasks: [task({ identifier: { name: "Noop", version: "1.0" } })] }),
      Code.InvalidArgument,
      /version "1.0" of task "Noop" is invalid: use "vMAJOR.MINOR"/,
    );
    class BadVersion extends Task {
      static identifier = { name: "Bad", version: "latest" };
      execute() {}
    }
    await expect(box.client.jobs().submit("j", new BadVersion())).rejects.toThrow(/version "latest" of task "Bad" is invalid/);
  });

  it("a bad job among jobs submitted together: only it is refused, with its own error", async () => {
    const before = await counts();
    const res = await box.api.jobs.submitJobs({
      jobs: [
        { name: "first", tasks: [task()] },
        { name: "lost", cluster: "nowhere", tasks: [task()] },
        { name: "third", tasks: [task(), task({ dependsOn: [0] })] },
      ],
    });
    expect(res.results.map((r) => r.result.case)).toEqual(["job", "refused", "job"]);
    const refusal = res.results[1].result.value as { code: string; message: string };
    expect(refusal.code).toBe("not_found");
    expect(refusal.message).toMatch(/cluster "nowhere" does not exist/);
    const [first, third] = [res.results[0], res.results[2]].map((r) => r.result.value as { id: string; name: string });
    expect([first.name, third.name]).toEqual(["first", "third"]);
    expect((await box.client.jobs().get(third.id)).tasks.map((t) => t.dependsOn.length)).toEqual([0, 1]);
    expect(await counts()).toEqual({ jobs: before.jobs + 2, tasks: before.tasks + 3 });
    await refused(() => box.api.jobs.submitJobs({ jobs: [] }), Code.InvalidArgument, /jobs is empty/);
  });

  it("a job with no tasks, or without a name", async () => {
    await refused(() => box.api.jobs.submitJob({ name: "j", tasks: [] }), Code.InvalidArgument, /tasks/);
    await refused(() => box.api.jobs.submitJob({ name: "", tasks: [task()] }), Code.InvalidArgument, /name/);
  });

  it("a runner that registers no tasks or an unknown cluster", async () => {
    const work = async (req: object) => {
      const session = openSession(box.api.runner, { runnerId: crypto.randomUUID(), concurrency: 1, ...req });
      const error = await session.ended;
      if (error) throw error;
    };
    await refused(() => work({ tasks: [] }), Code.InvalidArgument, /at least one task/);
    await refused(() => work({ tasks: [{ name: "Noop", version: "v1.0" }], cluster: "nowhere" }), Code.NotFound, /cluster "nowhere" does not exist/);
    await refused(() => work({ tasks: [{ name: "Noop", version: "v1.0" }], concurrency: 0 }), Code.InvalidArgument, /concurrency must be between 1 and 10000/);
  });
});
