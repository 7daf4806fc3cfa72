import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { FileService, PathState } from "../gen/sluice/v1/file_service_pb.js";
import { FileTask, QueueName, formatQueueName, parseQueueName, type PathStatus, type TaskPaths } from "../runner/index.js";
import { useSandbox } from "./support/harness.js";
import { openSession } from "./support/session.js";

class Probe extends FileTask {
  static identifier = { name: "Probe", version: "v1.0" };
  processPaths(_paths: TaskPaths, _status: PathStatus) {}
}

const PROBE = { identifier: { name: "Probe", version: "v1.0" }, input: new TextEncoder().encode("{}") };

/** The Connect error a call fails with. */
async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded");
}

describe("bad input to file workflows", () => {
  const box = useSandbox();
  const api = () => createClient(FileService, box.client.transport);
  const counts = async () => {
    const [row] = await box.sql<{ jobs: string; lists: string; states: string }[]>`
      SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM path_lists) AS lists, (SELECT count(*) FROM path_states) AS states`;
    return row;
  };

  it("refuses a submit with InvalidArgument saying which input is wrong, and writes nothing", async () => {
    const before = await counts();
    const cases: [Parameters<ReturnType<typeof api>["submitFileWorkflow"]>[0], RegExp][] = [
      [{ name: "w", tasks: [PROBE], paths: { case: "inline", value: { paths: [{ path: "/a" }, { size: 3n }] } } }, /inline\.paths\[1\]: path is missing/],
      [{ name: "w", tasks: [], paths: { case: "inline", value: { paths: [{ path: "/a" }] } } }, /tasks is empty: a file workflow needs at least one task/],
      [{ name: "w", tasks: [PROBE], paths: { case: "inline", value: { paths: [{ path: "/a" }, { path: "/a" }] } } }, /inline\.paths\[1\]: path "\/a" is given twice/],
      [{ name: "w", tasks: [PROBE] }, /paths is missing/],
      [{ name: "w", tasks: [PROBE], chunkSize: 1_000_000, paths: { case: "inline", value: { paths: [{ path: "/a" }] } } }, /chunk_size is 1000000/],
      [{ name: "w", tasks: [{ ...PROBE, dependsOn: [0] }], paths: { case: "inline", value: { paths: [{ path: "/a" }] } } }, /tasks\[0\]: depends_on must be empty/],
      [{ name: "w", tasks: [PROBE], paths: { case: "inline", value: { paths: [{ path: "/a", size: 2n ** 63n }] } } }, /inline\.paths\[0\]: size 9223372036854775808 is larger than any file/],
      [{ name: "w", tasks: [PROBE], site: "no sites with spaces", paths: { case: "inline", value: { paths: [{ path: "/a" }] } } }, /site "no sites with spaces" is invalid/],
    ];
    for (const [req, message] of cases) {
      const e = await refusal(api().submitFileWorkflow(req));
      expect([Code[e.code], e.rawMessage]).toEqual(["InvalidArgument", expect.stringMatching(message)]);
    }
    const missing = await refusal(api().submitFileWorkflow({ name: "w", tasks: [PROBE], paths: { case: "stagedListId", value: "987654" } }));
    expect(missing.code).toBe(Code.NotFound);
    expect(await counts()).toEqual(before);
    // A staged page with a path twice is refused whole.
    const staged = await api().stagePaths({ paths: [{ path: "/x" }] });
    const dup = await refusal(api().stagePaths({ listId: staged.listId, paths: [{ path: "/y" }, { path: "/x" }] }));
    expect([dup.code, dup.rawMessage]).toEqual([Code.InvalidArgument, expect.stringMatching(/"\/x" is given twice/)]);
    expect((await api().stagePaths({ listId: staged.listId, paths: [] })).total).toBe(1n);
  });

  it("refuses reports of unknown states and of paths the task was not given, and writes none of the batch", async () => {
    const files = box.client.files();
    const { job } = await files.submitWorkflow("probe", [Probe], { paths: ["/in/a", "/in/b"] });
    const session = openSession(box.api.runner, { tasks: [{ name: "Probe", version: "v1.0" }], concurrency: 1, prefetch: 0 });
    try {
      const a = await session.until("assignment");
      const held = { taskId: a.ids[0], lease: a.leases[0], runnerId: session.runnerId };
      expect(a.jobIds[0]).toBe(job.id);
      const report = (paths: string[], states: PathState[], extra = {}) => api().reportPathStates({ ...held, paths, states, ...extra });
      const cases: [() => Promise<unknown>, Code, RegExp][] = [
        [() => report(["/in/a", "/in/b"], [PathState.PROCESSED, 99 as PathState]), Code.InvalidArgument, /states\[1\] is 99, not a path state/],
        [() => report(["/in/a"], [PathState.UNSPECIFIED]), Code.InvalidArgument, /states\[0\] is 0, not a path state/],
        [() => report(["/in/a", "/elsewhere"], [PathState.PROCESSED, PathState.PROCESSED]), Code.InvalidArgument, /"\/elsewhere" is not one of the input paths of task/],
        [() => report(["/in/a", ""], [PathState.PROCESSED, PathState.PROCESSED]), Code.InvalidArgument, /paths\[1\]: path is missing/],
        [() => report(["/in/a", "/in/a"], [PathState.PROCESSED, PathState.SKIPPED]), Code.InvalidArgument, /reported twice/],
        [() => report(["/in/a"], [PathState.PROCESSED], { lease: held.lease + 1 }), Code.PermissionDenied, /is not running under lease/],
        [() => report(["/in/a"], [PathState.PROCESSED], { runnerId: crypto.randomUUID() }), Code.PermissionDenied, /is not running under lease/],
        [() => api().listTaskPaths({ ...held, runnerId: crypto.randomUUID() }), Code.PermissionDenied, /is not running under lease/],
        [() => api().listTaskPaths({ ...held, taskId: "999999" }), Code.NotFound, /task 999999 does not exist/],
        [() => api().listTaskPaths({ ...held, pageToken: Buffer.from(JSON.stringify("x")).toString("base64url") }), Code.InvalidArgument, /page_token is not one this server gave/],
        [() => api().listFilePaths({ jobId: job.id, pageToken: "garbage" }), Code.InvalidArgument, /page_token is not one this server gave/],
        [() => api().listFilePaths({ jobId: job.id, task: "Nope" }), Code.NotFound, /has no file task "Nope": name a task by id, by name \(Probe\)/],
      ];
      for (const [call, code, message] of cases) {
        const e = await refusal(call());
        expect([Code[e.code], e.rawMessage]).toEqual([Code[code], expect.stringMatching(message)]);
      }
      expect((await counts()).states).toBe("0");
      // The holder's good report goes in.
      expect((await report(["/in/a"], [PathState.FAILURES], { messages: ["no such file"] })).recorded).toBe(1);
      expect((await counts()).states).toBe("1");
      // A path reported again takes its new state (with the others of the batch).
      expect((await report(["/in/b", "/in/a"], [PathState.SKIPPED, PathState.PROCESSED])).recorded).toBe(2);
      const rows = await box.sql`SELECT path, state, message FROM path_states ORDER BY path`;
      expect(rows.map((r) => [r.path, r.state, r.message])).toEqual([["/in/a", "processed", null], ["/in/b", "skipped", null]]);
    } finally {
      session.close();
      await session.ended;
    }
  });

  it("refuses bad input in the SDK before anything is sent", async () => {
    const files = box.client.files();
    await expect(files.submitWorkflow("none", [], { paths: ["/a"] })).rejects.toThrow(/at least one task/);
    await expect(files.submitWorkflow("no path", [Probe], { paths: [{ size: 3 } as never] })).rejects.toThrow(/path 0 has no "path"/);
    await expect(files.submitWorkflow("two sources", [Probe], { paths: ["/a"], listing: { location: "1" } })).rejects.toThrow(/exactly one of/);
  });
});

describe("queue names", () => {
  it("formats and parses site.queue#function", () => {
    const q = new QueueName("london", "highpriority", "custom");
    expect(String(q)).toBe("london.highpriority#custom");
    expect(parseQueueName("london.highpriority#custom")).toEqual(q);
    expect(QueueName.parse(q.toString()).site).toBe("london");
    expect(q.queue).toBe("highpriority");
    expect(formatQueueName("", "default", "Verify")).toBe("default#Verify");
    expect(parseQueueName("default#Verify")).toEqual(new QueueName("", "default", "Verify"));
    for (const bad of ["london.highpriority", "london#x#y", "a.b.c#d", ".q#f", "london.q#"]) {
      expect(() => parseQueueName(bad), bad).toThrow(/is not "site\.queue#function"/);
    }
    expect(() => formatQueueName("lon don", "q", "f")).toThrow(/site "lon don"/);
  });
});
