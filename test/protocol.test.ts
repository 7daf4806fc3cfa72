import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { RunnerService, type SessionRequestSchema } from "../gen/sluice/v1/runner_service_pb.js";
import { JobService, type SubmitJobsRequestSchema } from "../gen/sluice/v1/job_service_pb.js";
import { Client, Task } from "../runner/index.js";
import postgres from "postgres";
import { eventually, quiet, useSandbox } from "./support/harness.js";
import { openSession } from "./support/session.js";

const ran: string[] = [];
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

/** The real server's RunnerService behind a proxy that counts how results arrive. */
async function countingServer(box: ReturnType<typeof useSandbox>, options: { breakAfterFirstResults?: boolean } = {}) {
  const seen = { sessions: 0, resultsOnSession: 0, broke: false };
  const routes = (router: ConnectRouter) =>
    router.service(RunnerService, {
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
    });
  return { ...(await serveRoutes(routes)), seen };
}

describe("the runner protocol: assignments, sessions, reconnects, stopping runners", () => {
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

  const countSession = (concurrency: number, runnerId?: string, held: { taskId: string; lease: number }[] = []) =>
    openSession(box.api.runner, { runnerId, tasks: [{ name: "Count", version: "v1.0" }], concurrency, prefetch: 0, held });

  const taskStates = (jobIds: readonly string[]) =>
    Promise.all(jobIds.map(async (id) => (await box.client.jobs().get(id)).tasks[0])).then((ts) => ts.map((t) => [t.id, t.state, t.attempts]));

  it("an assignment of tasks of several identifiers lines up every list with its task", async () => {
    // Root tasks of two identifiers (one an older minor version), interleaved,
    // each input naming its identifier: the lease returns one row per
    // identifier, and the lists must still line up task by task.
    const encode = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));
    const tasks = [0, 1, 2, 3, 4, 5].map((i) => {
      const identifier = i % 2 === 0 ? { name: "Mixed", version: "v1.0" } : { name: "MixedOther", version: "v2.1" };
      return { identifier, input: encode({ i, name: identifier.name, version: identifier.version }) };
    });
    await box.api.clusters.createCluster({ slug: "mixed" });
    const { job } = await box.api.jobs.submitJob({ name: "mixed", cluster: "mixed", tasks });
    const session = openSession(box.api.runner, {
      cluster: "mixed",
      tasks: [
        { name: "Mixed", version: "v1.0" },
        { name: "MixedOther", version: "v2.3" },
      ],
      concurrency: 10,
    });
    const got: { id: string; jobId: string; name: string; version: string; input: { i: number; name: string; version: string } }[] = [];
    while (got.length < tasks.length) {
      const c = await session.until("assignment");
      c.ids.forEach((id, i) => {
        const k = c.identifiers[c.identifierIndexes[i]];
        got.push({ id, jobId: c.jobIds[i], name: k.name, version: k.version, input: JSON.parse(new TextDecoder().decode(c.inputs[i])) });
      });
    }
    session.close();
    // What the server stored for each task id, to hold every list against.
    const { tasks: stored } = await box.api.jobs.getJob({ id: job!.id });
    const byId = new Map(stored.map((t) => [t.id, JSON.parse(new TextDecoder().decode(t.input))]));
    for (const g of got) {
      expect(g.jobId).toBe(job!.id);
      expect(g.input).toEqual(byId.get(g.id));
      expect(g.input).toEqual({ i: expect.any(Number), name: g.name, version: g.version });
    }
    expect(got.map((g) => g.input.i).sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("a session answers results in order; the same success again is refused, saying why", async () => {
    const job = await box.client.jobs().submit("session", new Count({ n: 7 }));
    const session = countSession(1);
    const c = await session.until("assignment");
    expect(c.jobIds).toEqual([job.id]);
    const computed = { taskIds: [c.ids[0]], leases: [c.leases[0]], jobIds: [c.jobIds[0]] };
    // Twice, without waiting: the answers come in the order sent.
    const [first, second] = await Promise.all([session.record({ computed }), session.record({ computed })]);
    session.close();
    expect(first.refused).toEqual([]);
    expect(second.refused).toEqual([
      expect.objectContaining({ taskId: c.ids[0], code: "failed_precondition", message: expect.stringMatching(/it is computed, not running/) }),
    ]);
    expect((await box.client.jobs().get(job.id)).state).toBe("completed");
  });

  it("results that do not line up, or name a task twice, are refused per result with what to fix; a bad first message ends the session", async () => {
    const session = countSession(1);
    await session.until("started");
    const refusal = async (results: Parameters<typeof session.record>[0], message: RegExp) => {
      const answer = await session.record(results);
      expect(answer.refused.length).toBeGreaterThan(0);
      for (const r of answer.refused) {
        expect(r.code).toBe("invalid_argument");
        expect(r.message).toMatch(message);
      }
    };
    await refusal({ computed: { taskIds: ["1", "2"], leases: [1], jobIds: ["1", "1"] } }, /task_ids, leases and job_ids must have one element per task, got 2, 1 and 2/);
    await refusal({ computed: { taskIds: ["x"], leases: [1], jobIds: ["1"] } }, /computed\.task_ids\[0\] must be a positive decimal number/);
    await refusal(
      {
        results: [{ task: { taskId: "7", lease: 1 }, jobId: "1", outcome: { case: "computed", value: {} } }],
        computed: { taskIds: ["7"], leases: [1], jobIds: ["1"] },
      },
      /task 7 is reported twice in one message/,
    );
    session.close();

    const ended = async (messages: MessageInitShape<typeof SessionRequestSchema>[]) => {
      async function* send() {
        yield* messages;
      }
      try {
        for await (const _ of box.api.runner.session(send())) {
          // read until the server ends the session
        }
        return undefined;
      } catch (e) {
        return ConnectError.from(e);
      }
    };
    const first = await ended([{ message: { case: "results", value: {} } }]);
    expect(first?.code).toBe(Code.InvalidArgument);
    expect(first?.rawMessage).toMatch(/first message of a session must be start/);
    const start = { runnerId: crypto.randomUUID(), tasks: [{ name: "Count", version: "v1.0" }], concurrency: 1 };
    const twice = await ended([
      { message: { case: "start", value: start } },
      { message: { case: "start", value: start } },
    ]);
    expect(twice?.code).toBe(Code.InvalidArgument);
    expect(twice?.rawMessage).toMatch(/only results, extend, drain and end/);
  });

  it("tasks sent on a session as it broke are queued again as soon as the runner ends its next session", async () => {
    ran.length = 0;
    const jobs = box.client.jobs();
    const submitted: string[] = [];
    for (const n of [101, 102, 103]) submitted.push((await jobs.submit(`in transit ${n}`, new Count({ n }))).id);
    const runnerId = crypto.randomUUID();
    const session = countSession(3, runnerId);
    const c = await session.until("assignment");
    expect(c.ids).toHaveLength(3);
    // The runner got and ran the first; the other two were on their way when its session broke.
    const [first, ...lost] = c.ids;
    expect((await session.record({ computed: { taskIds: [first], leases: [c.leases[0]], jobIds: [c.jobIds[0]] } })).refused).toEqual([]);
    session.close();
    await session.ended;
    expect(await taskStates(submitted)).toEqual([
      [first, "computed", 1],
      [lost[0], "running", 1],
      [lost[1], "running", 1],
    ]);

    // Leases last 30 s here: without this, the two would wait that long. The
    // runner stopping opens a session holding nothing, drains it and ends it.
    const stopping = openSession(box.api.runner, { runnerId, tasks: [{ name: "Count", version: "v1.0" }], concurrency: 3, draining: true });
    stopping.finish();
    expect(await stopping.ended).toBeUndefined();
    expect(await taskStates(submitted)).toEqual([
      [first, "computed", 1],
      [lost[0], "queued", 1],
      [lost[1], "queued", 1],
    ]);
    await box.client.runner("default", { tasks: [Count], logger: quiet }).runAll();
    expect(ran.sort()).toEqual(["count 102", "count 103"]);
  });

  it("a runner that reconnects gets work for every slot it does not hold, whatever became of its results meanwhile", async () => {
    const jobs = box.client.jobs();
    const submitted: string[] = [];
    for (let n = 0; n < 8; n++) submitted.push((await jobs.submit(`reconnect ${n}`, new Count({ n }))).id);
    const runnerId = crypto.randomUUID();
    const before = countSession(4, runnerId);
    const c = await before.until("assignment");
    expect(c.ids).toHaveLength(4);
    const lease = (i: number) => ({ taskId: c.ids[i], lease: c.leases[i] });
    // Task 0's result is recorded, but its answer is lost with the session;
    // tasks 1 and 2 are still running on the runner; task 3 never reached it.
    await before.record({ computed: { taskIds: [c.ids[0]], leases: [c.leases[0]], jobIds: [c.jobIds[0]] } });
    before.close();
    await before.ended;

    // The runner says it holds 0 (its answer never came), 1 and 2.
    const after = countSession(4, runnerId, [lease(0), lease(1), lease(2)]);
    // 1 and 2 take two slots; 0 is computed and 3 was queued again at once:
    // two slots are free, and get work straight away.
    const next = await after.until("assignment");
    expect(next.ids).toHaveLength(2);
    const byId = new Map((await taskStates(submitted)).map((t) => [t[0], t]));
    expect(byId.get(c.ids[3])).toEqual([c.ids[3], "running", 2]);
    // Its result for 0 comes again and is refused; 1 and 2 finish: their
    // slots are free, and the rest of the queue comes.
    const again = await after.record({
      computed: { taskIds: [c.ids[0], c.ids[1], c.ids[2]], leases: [c.leases[0], c.leases[1], c.leases[2]], jobIds: [c.jobIds[0], c.jobIds[1], c.jobIds[2]] },
    });
    expect(again.refused.map((r) => r.taskId)).toEqual([c.ids[0]]);
    // The other five (3 to 7) come as slots free up.
    let a = next;
    for (let count = a.ids.length; ; count += a.ids.length) {
      expect((await after.record({ computed: { taskIds: a.ids, leases: a.leases, jobIds: a.jobIds } })).refused).toEqual([]);
      if (count === 5) break;
      a = await after.until("assignment");
    }
    after.finish();
    expect(await after.ended).toBeUndefined();
    expect((await taskStates(submitted)).map((t) => t[1])).toEqual(submitted.map(() => "computed"));
  });

  it("a database connection terminated under a runner ends its session as unavailable; it reconnects and every task runs once", async () => {
    ran.length = 0;
    const n = 600;
    const jobs = box.client.jobs();
    // Numbered apart from the tasks of other tests.
    await Promise.all(Array.from({ length: n }, (_, i) => jobs.submit(`terminated ${i}`, new Count({ n: 100_000 + i }))));
    const warnings: string[] = [];
    const runner = box.client.runner("default", { tasks: [Count], concurrency: 8, logger: { ...quiet, warn: (m: string) => warnings.push(m) } });
    const running = runner.runAll();
    // A connection of its own: one of the server's pool may be among those just terminated.
    const admin = postgres(box.databaseUrl, { max: 1, onnotice: () => {} });
    const [{ database }] = await admin<{ database: string }[]>`SELECT current_database() AS database`;
    for (let i = 0; i < 3; i++) {
      await eventually(() => ran.filter((r) => Number(r.split(" ")[1]) >= 100_000).length > (i + 1) * 100, 20_000, "tasks to run");
      await admin`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = ${database} AND pid <> pg_backend_pid()`;
    }
    await admin.end();
    await running;
    const mine = ran.filter((r) => Number(r.split(" ")[1]) >= 100_000);
    expect(mine.length).toBe(n);
    expect(new Set(mine).size).toBe(n);
    expect(warnings.filter((w) => /internal/.test(w))).toEqual([]);
  });

  it("the SDK's runner reports every result on its one session", async () => {
    const proxy = await countingServer(box);
    closers.push(proxy.close);
    const done = await runThrough(proxy.url, 40, "session");
    expect(new Set(done.map((j) => j.state))).toEqual(new Set(["completed"]));
    expect(proxy.seen.sessions).toBe(1);
    expect(proxy.seen.resultsOnSession).toBe(40);
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
 * streams opened and ended, messages on them, SubmitJobs calls.
 */
async function submitCountingServer(box: ReturnType<typeof useSandbox>) {
  const seen = { streamsOpened: 0, streamsEnded: 0, messages: 0, jobsOnStreams: 0, submitJobsCalls: 0 };
  const impl: Partial<ServiceImpl<typeof JobService>> = {
    async submitJobs(req) {
      seen.submitJobsCalls++;
      return box.api.jobs.submitJobs(req);
    },
    getJob: (req) => box.api.jobs.getJob(req),
  };
  {
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
  async function submitsThroughProxy() {
    const proxy = await submitCountingServer(box);
    closers.push(proxy.close);
    const client = new Client({ url: proxy.url });
    clients.push(client);
    return { proxy, jobs: client.jobs() };
  }

  it("the SDK submits on one stream while submits keep coming, and closes it when none is left", async () => {
    const { proxy, jobs } = await submitsThroughProxy();
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
    const { proxy, jobs } = await submitsThroughProxy();
    // One submit after the other, each waiting for the one before: a batch each.
    for (let i = 0; i < 20; i++) await jobs.submit(`one by one ${i}`, new Count({ n: i }));
    expect(proxy.seen.jobsOnStreams).toBe(20);
    // The first submit, with none before it, closes its stream at once; the
    // rest share one (a stream each when the SDK closed it after every answer;
    // a loaded machine may take longer than the linger between two of them).
    expect(proxy.seen.streamsOpened).toBeLessThanOrEqual(10);
    await expect.poll(() => proxy.seen.streamsEnded).toBe(proxy.seen.streamsOpened);
  });
});

describe("a runner stopping while no server answers", () => {
  it("returns from stop() without waiting for the stop timeout when it holds nothing", async () => {
    // A port nothing listens on.
    const server = http2.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const client = new Client({ url: `http://127.0.0.1:${port}` });
    let failed!: () => void;
    const failedOnce = new Promise<void>((resolve) => (failed = resolve));
    const runner = client.runner("default", { tasks: [Count], logger: { ...quiet, warn: () => failed() }, stopTimeoutMs: 600_000 });
    const running = runner.runForever();
    await failedOnce;
    await runner.stop();
    await running;
    client.close();
  });
});
