import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { RunnerService, type SessionRequestSchema } from "../gen/sluice/v1/runner_service_pb.js";
import { JobService, type SubmitJobsRequestSchema } from "../gen/sluice/v1/job_service_pb.js";
import { Client, Task } from "../runner/index.js";
import { quiet, useSandbox } from "./support/harness.js";

const ran: string[] = [];
type SessionRequestInit = MessageInitShape<typeof SessionRequestSchema>;
type SubmitJobsInit = MessageInitShape<typeof SubmitJobsRequestSchema>;

class Count extends Task<{ n: number }> {
  static identifier = { name: "Count", version: "v1.0" };
  execute() {
    ran.push(`count ${this.input.n}`);
  }
}

/** Serves `routes` over cleartext HTTP/2 on a free port, as a stand-in server in front of the real one. */
async function serveRoutes(routes: (router: ConnectRouter) => void) {
  const server = http2.createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A RunnerService in front of the real server that behaves as a server built
 * before columns: it does not know WorkRequest.columns (so it sends
 * TaskAssignment.tasks), ignores CompleteTasksRequest.computed and never sets
 * computed_read. It counts what the runner sent.
 */
async function olderServer(box: ReturnType<typeof useSandbox>) {
  const seen = { callsWithColumns: 0, callsWithResults: 0, computedIgnored: 0 };
  const routes = (router: ConnectRouter) =>
    router.service(RunnerService, {
      async *work(req, ctx) {
        yield* box.api.runner.work({ ...req, columns: false }, { signal: ctx.signal });
      },
      async completeTasks(req) {
        const computed = req.computed?.taskIds.length ?? 0;
        if (computed > 0) seen.callsWithColumns++;
        if (req.results.length > 0) seen.callsWithResults++;
        seen.computedIgnored += computed;
        const res = await box.api.runner.completeTasks({ runnerId: req.runnerId, results: req.results });
        return { refused: res.refused };
      },
      extendLeases: (req) => box.api.runner.extendLeases(req),
    });
  return { ...(await serveRoutes(routes)), seen };
}

/** Messages for a session, sent as they are pushed. */
class Outbox {
  private items: SessionRequestInit[] = [];
  private wake: (() => void) | null = null;
  push(m: SessionRequestInit): void {
    this.items.push(m);
    this.wake?.();
  }
  async *messages(): AsyncGenerator<SessionRequestInit> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift()!;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

/** The real server's RunnerService behind a proxy that counts how results arrive. */
async function countingServer(box: ReturnType<typeof useSandbox>, options: { breakAfterFirstResults?: boolean } = {}) {
  const seen = { sessions: 0, resultsOnSession: 0, broke: false, completeCalls: [] as { results: number; last: boolean }[] };
  const routes = (router: ConnectRouter) =>
    router.service(RunnerService, {
      work: (req, ctx) => box.api.runner.work(req, { signal: ctx.signal }),
      async *session(messages, ctx) {
        seen.sessions++;
        let broken: (() => void) | null = null;
        const breaking = new Promise<void>((resolve) => (broken = resolve));
        async function* counted() {
          for await (const m of messages) {
            if (m.message.case === "results") {
              seen.resultsOnSession += (m.message.value.computed?.taskIds.length ?? 0) + m.message.value.results.length;
              if (options.breakAfterFirstResults && !seen.broke) {
                seen.broke = true;
                yield m;
                broken!();
                continue;
              }
            }
            yield m;
          }
        }
        const upstream = box.api.runner.session(counted(), { signal: ctx.signal })[Symbol.asyncIterator]();
        let deadline: Promise<null> | null = null;
        void breaking.then(() => (deadline = new Promise((r) => setTimeout(() => r(null), 300))));
        for (;;) {
          const next = await Promise.race([upstream.next(), breaking.then(() => deadline!)]);
          if (next === null) throw new ConnectError("the proxy broke the session", Code.Unavailable);
          if (next.done) return;
          // Once broken, the server's answers no longer reach the runner
          // (its assignments still do, until the session ends).
          if (deadline && next.value.event.case === "recorded") continue;
          yield next.value;
        }
      },
      async completeTasks(req) {
        seen.completeCalls.push({ results: req.results.length + (req.computed?.taskIds.length ?? 0), last: req.last });
        return box.api.runner.completeTasks(req);
      },
      extendLeases: (req) => box.api.runner.extendLeases(req),
    });
  return { ...(await serveRoutes(routes)), seen };
}

describe("the runner protocol: columns, older servers, stopping runners", () => {
  const box = useSandbox();
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  /**
   * Submits `n` Count jobs, runs them all with a runner of the SDK talking to
   * `url`, checks that each ran once and returns the jobs.
   */
  async function runThrough(url: string, n: number, label: string, logger: { info(m: string): void; warn(m: string): void; error(m: string): void } = quiet) {
    const client = new Client({ url });
    closers.push(async () => client.close());
    ran.length = 0;
    const jobs = box.client.jobs();
    const submitted = await Promise.all(Array.from({ length: n }, (_, i) => jobs.submit(`${label} ${i}`, new Count({ n: i }))));
    await client.runner("default", { tasks: [Count], concurrency: 4, logger }).runAll();
    expect(ran.sort()).toEqual(Array.from({ length: n }, (_, i) => `count ${i}`).sort());
    return Promise.all(submitted.map((j) => jobs.get(j.id)));
  }

  /** Opens a work stream as a runner that reads columns, and reads it up to its first assignment. */
  async function firstAssignment(runnerId: string, concurrency: number) {
    const stream = new AbortController();
    const events = box.api.runner.work(
      { runnerId, tasks: [{ name: "Count", version: "v1.0" }], concurrency, columns: true },
      { signal: stream.signal },
    );
    for await (const res of events) {
      if (res.event.case === "assignment") return { assignment: res.event.value, close: () => stream.abort() };
    }
    throw new Error("the work stream ended without an assignment");
  }

  it("a server sends assignments as columns to a runner that asks, and records successes sent as columns", async () => {
    const job = await box.client.jobs().submit("columns", new Count({ n: 1 }));
    const runnerId = crypto.randomUUID();
    const { assignment, close } = await firstAssignment(runnerId, 1);
    close();
    expect(assignment.tasks).toEqual([]);
    const columns = assignment.columns;
    expect(columns!.ids).toHaveLength(1);
    expect(columns!.identifiers[columns!.identifierIndexes[0]]).toMatchObject({ name: "Count", version: "v1.0" });
    expect(JSON.parse(new TextDecoder().decode(columns!.inputs[0]))).toEqual({ n: 1 });
    const [taskId, lease, jobId] = [columns!.ids[0], columns!.leases[0], columns!.jobIds[0]];
    expect(jobId).toBe(job.id);

    const done = await box.api.runner.completeTasks({ runnerId, computed: { taskIds: [taskId], leases: [lease], jobIds: [jobId] } });
    expect(done).toMatchObject({ refused: [], computedRead: true });
    expect((await box.client.jobs().get(job.id)).state).toBe("completed");

    // The same success again is refused for that task, saying why.
    const again = await box.api.runner.completeTasks({ runnerId, computed: { taskIds: [taskId], leases: [lease], jobIds: [jobId] } });
    expect(again.computedRead).toBe(true);
    expect(again.refused).toEqual([
      expect.objectContaining({ taskId, code: "failed_precondition", message: expect.stringMatching(/it is computed, not running/) }),
    ]);
  });

  it("an assignment of tasks of several identifiers lines up every column with its task, in both forms", async () => {
    // Root tasks of two identifiers (one an older minor version), interleaved,
    // each input naming its identifier: the lease returns one row per
    // identifier, and the columns must still line up task by task.
    const encode = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));
    const tasks = [0, 1, 2, 3, 4, 5].map((i) => {
      const identifier = i % 2 === 0 ? { name: "Mixed", version: "v1.0" } : { name: "MixedOther", version: "v2.1" };
      return { identifier, input: encode({ i, name: identifier.name, version: identifier.version }) };
    });
    await box.api.clusters.createCluster({ slug: "mixed" });
    const read = async (columns: boolean) => {
      const { job } = await box.api.jobs.submitJob({ name: "mixed", cluster: "mixed", tasks });
      const stream = new AbortController();
      const got: { id: string; jobId: string; name: string; version: string; input: { i: number; name: string; version: string } }[] = [];
      const events = box.api.runner.work(
        {
          runnerId: crypto.randomUUID(),
          cluster: "mixed",
          tasks: [
            { name: "Mixed", version: "v1.0" },
            { name: "MixedOther", version: "v2.3" },
          ],
          concurrency: 10,
          columns,
        },
        { signal: stream.signal },
      );
      for await (const res of events) {
        if (res.event.case !== "assignment") continue;
        const a = res.event.value;
        const c = a.columns;
        if (c) {
          c.ids.forEach((id, i) => {
            const k = c.identifiers[c.identifierIndexes[i]];
            got.push({ id, jobId: c.jobIds[i], name: k.name, version: k.version, input: JSON.parse(new TextDecoder().decode(c.inputs[i])) });
          });
        }
        for (const t of a.tasks) {
          got.push({ id: t.id, jobId: t.jobId, name: t.identifier!.name, version: t.identifier!.version, input: JSON.parse(new TextDecoder().decode(t.input)) });
        }
        if (got.length >= tasks.length) break;
      }
      stream.abort();
      return { job: job!, got };
    };
    for (const columns of [true, false]) {
      const { job, got } = await read(columns);
      // What the server stored for each task id, to hold every column against.
      const { tasks: stored } = await box.api.jobs.getJob({ id: job.id });
      const byId = new Map(stored.map((t) => [t.id, JSON.parse(new TextDecoder().decode(t.input))]));
      expect(got).toHaveLength(tasks.length);
      for (const g of got) {
        expect(g.jobId).toBe(job.id);
        expect(g.input).toEqual(byId.get(g.id));
        expect(g.input).toEqual({ i: expect.any(Number), name: g.name, version: g.version });
      }
      expect(got.map((g) => g.input.i).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    }
  });

  it("columns that do not line up, or name a task twice, are refused whole with what to fix", async () => {
    const runnerId = crypto.randomUUID();
    const refused = async (req: Parameters<typeof box.api.runner.completeTasks>[0], message: RegExp) => {
      const err = await box.api.runner.completeTasks(req).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(err?.rawMessage).toMatch(message);
    };
    await refused(
      { runnerId, computed: { taskIds: ["1", "2"], leases: [1], jobIds: ["1", "1"] } },
      /task_ids, leases and job_ids must have one element per task, got 2, 1 and 2/,
    );
    await refused({ runnerId, computed: { taskIds: ["x"], leases: [1], jobIds: ["1"] } }, /computed\.task_ids\[0\] must be a positive decimal number/);
    await refused(
      {
        runnerId,
        results: [{ task: { taskId: "7", lease: 1 }, jobId: "1", outcome: { case: "computed", value: {} } }],
        computed: { taskIds: ["7"], leases: [1], jobIds: ["1"] },
      },
      /task 7 is reported twice in one call/,
    );
  });

  it("tasks sent on a stream as it closed are queued again as soon as the runner says it stopped", async () => {
    ran.length = 0;
    const jobs = box.client.jobs();
    const submitted: Awaited<ReturnType<typeof jobs.submit>>[] = [];
    for (const n of [101, 102, 103]) submitted.push(await jobs.submit(`in transit ${n}`, new Count({ n })));
    const runnerId = crypto.randomUUID();
    const { assignment, close } = await firstAssignment(runnerId, 3);
    const columns = assignment.columns;
    expect(columns!.ids).toHaveLength(3);
    // The runner got and ran the first; the other two were on their way when its stream closed.
    const [first, ...lost] = columns!.ids;
    const done = await box.api.runner.completeTasks({
      runnerId,
      computed: { taskIds: [first], leases: [columns!.leases[0]], jobIds: [columns!.jobIds[0]] },
    });
    expect(done.refused).toEqual([]);
    close();
    const taskStates = async () =>
      Promise.all(submitted.map(async (j) => (await jobs.get(j.id)).tasks[0])).then((ts) => ts.map((t) => [t.id, t.state, t.failures]));
    expect(await taskStates()).toEqual([
      [first, "computed", 0],
      [lost[0], "running", 0],
      [lost[1], "running", 0],
    ]);

    // Leases last 30 s here: without this, the two would wait that long.
    await box.api.runner.completeTasks({ runnerId, last: true });
    expect(await taskStates()).toEqual([
      [first, "computed", 0],
      [lost[0], "queued", 0],
      [lost[1], "queued", 0],
    ]);
    await box.client.runner("default", { tasks: [Count], logger: quiet }).runAll();
    expect(ran.sort()).toEqual(["count 102", "count 103"]);
    expect((await Promise.all(submitted.map((j) => jobs.get(j.id)))).map((j) => j.state)).toEqual(["completed", "completed", "completed"]);
  });

  it("a session carries a runner's results and answers each in order; the same success again is refused", async () => {
    const job = await box.client.jobs().submit("session", new Count({ n: 7 }));
    const runnerId = crypto.randomUUID();
    const outbox = new Outbox();
    outbox.push({ message: { case: "work", value: { runnerId, tasks: [{ name: "Count", version: "v1.0" }], concurrency: 1, columns: true } } });
    const stream = new AbortController();
    const answers: { refused: { taskId: string; code: string; message: string }[]; computedRead: boolean }[] = [];
    const events = box.api.runner.session(outbox.messages(), { signal: stream.signal });
    for await (const res of events) {
      const event = res.event;
      if (event.case === "assignment") {
        const c = event.value.columns!;
        expect(c.jobIds).toEqual([job.id]);
        const computed = { taskIds: [c.ids[0]], leases: [c.leases[0]], jobIds: [c.jobIds[0]] };
        // Twice, without waiting: the answers come in the order sent.
        outbox.push({ message: { case: "results", value: { computed } } });
        outbox.push({ message: { case: "results", value: { runnerId, computed } } });
      } else if (event.case === "recorded") {
        answers.push(event.value);
        if (answers.length === 2) break;
      }
    }
    stream.abort();
    expect(answers[0]).toMatchObject({ refused: [], computedRead: true });
    expect(answers[1].refused).toEqual([expect.objectContaining({ code: "failed_precondition", message: expect.stringMatching(/it is computed, not running/) })]);
    expect((await box.client.jobs().get(job.id)).state).toBe("completed");
  });

  it("a session refuses a first message that is not work, results with last, and another runner's results", async () => {
    const runnerId = crypto.randomUUID();
    const work = { runnerId, tasks: [{ name: "Count", version: "v1.0" }], concurrency: 1 };
    const ended = async (messages: Parameters<Outbox["push"]>[0][]) => {
      const outbox = new Outbox();
      for (const m of messages) outbox.push(m);
      try {
        for await (const _ of box.api.runner.session(outbox.messages())) {
          // read until the server ends the session
        }
        return undefined;
      } catch (e) {
        return ConnectError.from(e);
      }
    };
    const first = await ended([{ message: { case: "results", value: { runnerId } } }]);
    expect(first?.code).toBe(Code.InvalidArgument);
    expect(first?.rawMessage).toMatch(/first message of a session must be work/);
    const last = await ended([{ message: { case: "work", value: work } }, { message: { case: "results", value: { last: true } } }]);
    expect(last?.code).toBe(Code.InvalidArgument);
    expect(last?.rawMessage).toMatch(/last is not allowed on a session/);
    const other = crypto.randomUUID();
    const foreign = await ended([{ message: { case: "work", value: work } }, { message: { case: "results", value: { runnerId: other } } }]);
    expect(foreign?.code).toBe(Code.InvalidArgument);
    expect(foreign?.rawMessage).toContain(`results name runner ${other}, but the session is runner ${runnerId}'s`);
  });

  it("the SDK's runner reports results on its session, not with CompleteTasks", async () => {
    const proxy = await countingServer(box);
    closers.push(proxy.close);
    const done = await runThrough(proxy.url, 40, "session");
    expect(new Set(done.map((j) => j.state))).toEqual(new Set(["completed"]));
    expect(proxy.seen.sessions).toBe(1);
    expect(proxy.seen.resultsOnSession).toBe(40);
    // Only the runner's goodbye (last) went as a call.
    expect(proxy.seen.completeCalls).toEqual([{ results: 0, last: true }]);
  });

  it("results whose session broke before the answer are sent again; each task is recorded once and runs once", async () => {
    // The proxy passes the first results message to the server, then breaks
    // the session before the answer reaches the runner.
    const proxy = await countingServer(box, { breakAfterFirstResults: true });
    closers.push(proxy.close);
    const warnings: string[] = [];
    const done = await runThrough(proxy.url, 20, "resent", { ...quiet, warn: (m: string) => warnings.push(m) });
    expect(done.map((j) => [j.tasks[0].state, j.tasks[0].attempts])).toEqual(done.map(() => ["computed", 1]));
    expect(proxy.seen.sessions).toBe(2);
    // The batch the server had recorded came back refused as already computed: said, not lost.
    expect(warnings.some((w) => /refused: .*it is computed, not running/.test(w))).toBe(true);
  });

  it("a runner talking to an older server sends its successes again as results, and every task runs once", async () => {
    const older = await olderServer(box);
    closers.push(older.close);
    const done = await runThrough(older.url, 60, "old");
    expect(new Set(done.map((j) => j.tasks[0].state))).toEqual(new Set(["computed"]));
    expect(new Set(done.map((j) => j.tasks[0].attempts))).toEqual(new Set([1]));
    // The runner found no sessions (Unimplemented), used Work and CompleteTasks,
    // tried columns once, saw them ignored, and went on with results.
    expect(older.seen.callsWithColumns).toBe(1);
    expect(older.seen.callsWithResults).toBeGreaterThan(0);
  });
});

/** The error a call or stream ended with, or undefined when it succeeded. */
const rejection = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e) => ConnectError.from(e),
  );

/** Messages for a submit stream, sent as they are pushed; `end` closes the client's side. */
class SubmitOutbox {
  private items: SubmitJobsInit[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  push(m: SubmitJobsInit): void {
    this.items.push(m);
    this.wake?.();
  }
  end(): void {
    this.ended = true;
    this.wake?.();
  }
  async *messages(): AsyncGenerator<SubmitJobsInit> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift()!;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

/**
 * The real server's JobService behind a proxy that counts how submits arrive:
 * streams opened and ended, messages on them, SubmitJobs calls. `streams:
 * false` makes it a server built before SubmitStream (Unimplemented).
 */
async function submitCountingServer(box: ReturnType<typeof useSandbox>, options: { streams: boolean }) {
  const seen = { streamsOpened: 0, streamsEnded: 0, messages: 0, jobsOnStreams: 0, submitJobsCalls: 0 };
  const impl: Partial<ServiceImpl<typeof JobService>> = {
    async submitJobs(req) {
      seen.submitJobsCalls++;
      return box.api.jobs.submitJobs(req);
    },
    getJob: (req) => box.api.jobs.getJob(req),
  };
  if (!options.streams) {
    // As a server without the method answers (and counted).
    // eslint-disable-next-line require-yield
    impl.submitStream = async function* () {
      seen.streamsOpened++;
      throw new ConnectError("sluice.v1.JobService.SubmitStream is not implemented", Code.Unimplemented);
    };
  } else {
    impl.submitStream = async function* (requests, ctx) {
      seen.streamsOpened++;
      async function* counted() {
        for await (const m of requests) {
          seen.messages++;
          seen.jobsOnStreams += m.jobs.length;
          yield m;
        }
      }
      try {
        yield* box.api.jobs.submitStream(counted(), { signal: ctx.signal });
      } finally {
        seen.streamsEnded++;
      }
    };
  }
  const routes = (router: ConnectRouter) => router.service(JobService, impl);
  return { ...(await serveRoutes(routes)), seen };
}

describe("submits on a stream", () => {
  const box = useSandbox();
  const clients: Client[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const close of closers.reverse()) await close();
  });

  const count = (n: number) => ({ identifier: { name: "Count", version: "v1.0" }, input: new TextEncoder().encode(JSON.stringify({ n })) });
  async function jobCount() {
    const [row] = await box.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM jobs`;
    return row.n;
  }

  it("answers each message in the order sent, with a result per job as SubmitJobs would", async () => {
    const outbox = new SubmitOutbox();
    // Three messages at once, without waiting for an answer.
    outbox.push({ jobs: [{ name: "a1", tasks: [count(1)] }, { name: "a2", tasks: [count(2)] }] });
    outbox.push({ jobs: [{ name: "b1", tasks: [count(3)] }, { name: "b2", cluster: "nowhere", tasks: [count(4)] }] });
    outbox.push({ jobs: [{ name: "c1", tasks: [count(5), { ...count(6), dependsOn: [0] }] }] });
    outbox.end();
    const answers = [];
    for await (const res of box.api.jobs.submitStream(outbox.messages())) answers.push(res.results);
    expect(answers.map((a) => a.map((r) => (r.result.case === "job" ? r.result.value.name : r.result.value?.code)))).toEqual([
      ["a1", "a2"],
      ["b1", "not_found"],
      ["c1"],
    ]);
    const refusal = answers[1][1].result.value as { message: string };
    expect(refusal.message).toMatch(/cluster "nowhere" does not exist/);
    const c1 = answers[2][0].result.value as { id: string };
    expect((await box.client.jobs().get(c1.id)).tasks.map((t) => t.dependsOn.length)).toEqual([0, 1]);

    // Many more messages at once than the server reads ahead: every one is answered, in order.
    const many = new SubmitOutbox();
    for (let i = 0; i < 60; i++) many.push({ jobs: [{ name: `many ${i}`, tasks: [count(i)] }] });
    many.end();
    const names: string[] = [];
    for await (const res of box.api.jobs.submitStream(many.messages())) {
      names.push(...res.results.map((r) => (r.result.case === "job" ? r.result.value.name : "refused")));
    }
    expect(names).toEqual(Array.from({ length: 60 }, (_, i) => `many ${i}`));
  });

  it("ends with InvalidArgument at a message it refuses as a whole, after answering those before it; nothing after it is written", async () => {
    const before = await jobCount();
    const outbox = new SubmitOutbox();
    outbox.push({ jobs: [{ name: "kept", tasks: [count(1)] }] });
    outbox.push({ jobs: [] });
    outbox.push({ jobs: [{ name: "never", tasks: [count(2)] }] });
    const answers: string[] = [];
    const err = await rejection((async () => {
      for await (const res of box.api.jobs.submitStream(outbox.messages())) {
        answers.push(...res.results.map((r) => (r.result.case === "job" ? r.result.value.name : "refused")));
      }
    })());
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toMatch(/jobs is empty; submit at least one job/);
    expect(answers).toEqual(["kept"]);
    expect(await jobCount()).toBe(before + 1);
    const [names] = await box.sql<{ names: string[] }[]>`SELECT array_agg(name) AS names FROM jobs WHERE name IN ('kept', 'never')`;
    expect(names.names).toEqual(["kept"]);

    const tooMany = new SubmitOutbox();
    tooMany.push({ jobs: Array.from({ length: 1001 }, (_, i) => ({ name: `many ${i}`, tasks: [count(i)] })) });
    const err2 = await rejection((async () => {
      for await (const _ of box.api.jobs.submitStream(tooMany.messages())) {
        // no answer is expected
      }
    })());
    expect(err2?.code).toBe(Code.InvalidArgument);
    expect(err2?.rawMessage).toMatch(/1001 jobs in one message; send at most 1000/);
    expect(await jobCount()).toBe(before + 1);
  });

  /** An SDK job client talking to the server through a counting proxy (closed after the file). */
  async function submitsThroughProxy(options: { streams: boolean }) {
    const proxy = await submitCountingServer(box, options);
    closers.push(proxy.close);
    const client = new Client({ url: proxy.url });
    clients.push(client);
    return { proxy, jobs: client.jobs() };
  }

  it("the SDK submits on one stream while submits keep coming, and closes it when none is left", async () => {
    const { proxy, jobs } = await submitsThroughProxy({ streams: true });
    const made = await Promise.all(Array.from({ length: 200 }, (_, i) => jobs.submit(`streamed ${i}`, new Count({ n: i }))));
    expect(made.map((j) => j.name)).toEqual(Array.from({ length: 200 }, (_, i) => `streamed ${i}`));
    expect(new Set(made.map((j) => j.id)).size).toBe(200);
    expect(proxy.seen.submitJobsCalls).toBe(0);
    expect(proxy.seen.jobsOnStreams).toBe(200);
    // Nothing left to send: the stream was closed, not left open.
    await expect.poll(() => proxy.seen.streamsEnded).toBe(proxy.seen.streamsOpened);
    expect(proxy.seen.streamsOpened).toBeGreaterThanOrEqual(1);
    // A refusal on the stream is the submit's own error, as from SubmitJobs.
    const lost = await rejection(jobs.submit("lost", new Count({ n: 0 }), { cluster: "nowhere" }));
    expect(lost?.code).toBe(Code.NotFound);
    expect(lost?.rawMessage).toMatch(/cluster "nowhere" does not exist/);
  });

  it("the SDK keeps its stream open between submits that follow each other, and closes it once they stop", async () => {
    const { proxy, jobs } = await submitsThroughProxy({ streams: true });
    // One submit after the other, each waiting for the one before: a batch each.
    for (let i = 0; i < 20; i++) await jobs.submit(`one by one ${i}`, new Count({ n: i }));
    expect(proxy.seen.jobsOnStreams).toBe(20);
    // The first submit, with none before it, closes its stream at once; the
    // rest share one (a stream each when the SDK closed it after every answer).
    expect(proxy.seen.streamsOpened).toBeLessThanOrEqual(4);
    await expect.poll(() => proxy.seen.streamsEnded).toBe(proxy.seen.streamsOpened);
  });

  it("the SDK submits with SubmitJobs to a server without SubmitStream, and tries the stream only once", async () => {
    const { proxy: older, jobs } = await submitsThroughProxy({ streams: false });
    const first = await Promise.all(Array.from({ length: 30 }, (_, i) => jobs.submit(`older ${i}`, new Count({ n: i }))));
    const second = await Promise.all(Array.from({ length: 30 }, (_, i) => jobs.submit(`older again ${i}`, new Count({ n: i }))));
    expect(new Set([...first, ...second].map((j) => j.id)).size).toBe(60);
    expect(older.seen.submitJobsCalls).toBeGreaterThanOrEqual(2);
    expect(older.seen.streamsOpened).toBe(1);
    const [row] = await box.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM jobs WHERE name LIKE 'older %'`;
    expect(row.n).toBe(60);
  });
});
