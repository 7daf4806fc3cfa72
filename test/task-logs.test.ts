import { setImmediate as tick } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { type ExecutionContext, Task } from "../runner/index.js";
import { deleteExpiredJobs } from "../server/store/job-retention.js";
import { ObservabilityDefaults } from "../server/observe/config.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { eventually, jobInState, useSandbox } from "./support/harness.js";
import { openSession } from "./support/session.js";

/** Writes `lines` lines through the console and the logger, yielding between them so that tasks interleave. */
class Chatty extends Task<{ who: string; lines: number }> {
  static identifier = { name: "Chatty", version: "v1.0" };
  async execute(context: ExecutionContext) {
    for (let i = 0; i < this.input.lines; i++) {
      console.log(`${this.input.who} says ${i}`);
      await tick();
      context.logger.info(`${this.input.who} step`, { i });
      await new Promise((r) => setTimeout(r, 1));
    }
    console.error(`${this.input.who} is done`);
  }
}

/** Text that an array literal must escape. */
const TRICKY = 'quotes " and \\ back\\slash, {braces}, NULL, commas,\nnew line ✓';

/** Submits four Chatty subtasks, which run at once. */
class Crowd extends Task {
  static identifier = { name: "Crowd", version: "v1.0" };
  execute(context: ExecutionContext) {
    context.logger.warn("starting the crowd");
    console.log("a crowd of %d", 4);
    context.logger.error(TRICKY, { say: TRICKY });
    for (const who of ["ann", "bob", "cid", "dee"]) context.submitSubtask(new Chatty({ who, lines: 20 }));
  }
}

/** Opens and closes a gate between its two halves, for tests that look while it runs. */
const gates = new Map<string, { open: () => void; opened: Promise<void> }>();
function gate(name: string) {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  gates.set(name, { open, opened });
  return open;
}

class Gated extends Task<{ gate: string }> {
  static identifier = { name: "Gated", version: "v1.0" };
  async execute(context: ExecutionContext) {
    const tiles = context.progress("tiles", 10);
    context.logger.info("before the gate");
    tiles.add(3);
    await gates.get(this.input.gate)!.opened;
    context.logger.info("after the gate");
    tiles.add(7);
  }
}

/** Writes one long line after another. */
class Flood extends Task {
  static identifier = { name: "Flood", version: "v1.0" };
  execute(context: ExecutionContext) {
    for (let i = 0; i < 50; i++) context.logger.info(`${i} ${"x".repeat(200)}`);
  }
}

const tasks = [Chatty, Crowd, Gated, Flood];

/** A task of a given identifier with an empty input, as submitted for a process task. */
function namedTask(name: string, version: string): Task {
  return new (class extends Task {
    static identifier = { name, version };
    execute() {}
  })({});
}

describe("task logs", () => {
  const box = useSandbox();

  it("keeps the lines of concurrent tasks apart, in the order each wrote them, with their levels and fields", async () => {
    const runner = box.client.runner("default", { tasks, concurrency: 4, echoTaskLogs: false });
    const running = runner.runForever();
    try {
      const job = await box.client.jobs().submit("crowd", new Crowd());
      await jobInState(box.client, job.id, ["completed"]);
      const details = await box.client.jobs().get(job.id);
      const obs = box.client.observability();
      const all = await obs.logs(job.id);
      // 4 tasks x (20 console lines + 20 logger lines + 1 error line), plus the root's three lines.
      expect(all).toHaveLength(4 * 41 + 3);
      const byTask = new Map<string, string[]>();
      for (const l of all) byTask.set(l.taskId, [...(byTask.get(l.taskId) ?? []), l.message]);
      // The tasks ran at once: their lines are interleaved in the job's log.
      const owners = all.map((l) => l.taskId);
      const switches = owners.filter((o, i) => i > 0 && o !== owners[i - 1]).length;
      expect(switches).toBeGreaterThan(4);
      for (const t of details.tasks.filter((t) => t.identifier.name === "Chatty")) {
        const who = (t.input as { who: string }).who;
        const expected = [];
        for (let i = 0; i < 20; i++) expected.push(`${who} says ${i}`, `${who} step`);
        expected.push(`${who} is done`);
        expect(byTask.get(t.id)).toEqual(expected);
        const own = await obs.logs(job.id, { taskId: t.id });
        expect(own.map((l) => l.message)).toEqual(expected);
        expect(own.filter((l) => l.fields).map((l) => l.fields)).toEqual(Array.from({ length: 20 }, (_, i) => ({ i })));
        expect(own.at(-1)?.level).toBe("error");
        expect(own.every((l) => l.attempt === 1)).toBe(true);
      }
      const root = details.tasks.find((t) => t.identifier.name === "Crowd")!;
      expect((await obs.logs(job.id, { taskId: root.id })).map((l) => [l.level, l.message, l.fields])).toEqual([
        ["warn", "starting the crowd", undefined],
        ["info", "a crowd of 4", undefined],
        ["error", TRICKY, { say: TRICKY }],
      ]);
      // Pages: reading after a line gives what follows it.
      const page = await obs.logs(job.id, { after: all[100].id });
      expect(page.map((l) => l.id)).toEqual(all.slice(101).map((l) => l.id));

      // Retention deletes a job's lines with it.
      expect(await deleteExpiredJobs(box.sql, 0, 1_000)).toBeGreaterThan(0);
      const [{ n }] = await box.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM task_logs WHERE job_id = ${job.id}`;
      expect(n).toBe(0);
    } finally {
      await runner.stop();
      await running;
    }
  });

  it("follows a job: lines and progress arrive while its task runs, and the follow ends with the job", async () => {
    const open = gate("follow");
    const runner = box.client.runner("default", { tasks, echoTaskLogs: false });
    const running = runner.runForever();
    try {
      const job = await box.client.jobs().submit("gated", new Gated({ gate: "follow" }));
      const obs = box.client.observability();
      const seen: string[] = [];
      const states: string[] = [];
      let lastProgress: unknown;
      let beforeSeen!: () => void;
      const before = new Promise<void>((r) => (beforeSeen = r));
      const following = (async () => {
        for await (const u of obs.follow(job.id)) {
          for (const l of u.lines) seen.push(l.message);
          if (u.state) states.push(u.state);
          if (u.progress) lastProgress = u.progress;
          if (seen.includes("before the gate")) beforeSeen();
        }
      })();
      await before;
      // The task is still running, behind its gate.
      expect(seen).toEqual(["before the gate"]);
      expect((await box.client.jobs().get(job.id)).state).toBe("started");
      const mid = await eventually(async () => {
        const p = await obs.progress(job.id);
        return p.progress[0]?.done === 3 ? p : undefined;
      });
      expect(mid.progress).toEqual([{ label: "tiles", done: 3, total: 10 }]);
      open();
      await following;
      expect(seen).toEqual(["before the gate", "after the gate"]);
      expect(states.at(-1)).toBe("completed");
      expect(lastProgress).toEqual([{ label: "tiles", done: 10, total: 10 }]);
    } finally {
      await runner.stop();
      await running;
    }
  });
});

describe("who may write and read task logs", () => {
  const box = useSandbox();

  it("takes lines only for tasks the sending runner holds, and refuses bad reads saying what to fix", async () => {
    const job = await box.client.jobs().submit("held", new Flood());
    const start = { cluster: "default", tasks: [{ name: "Flood", version: "v1.0" }], concurrency: 1 };
    const holder = openSession(box.api.runner, start);
    const assigned = await holder.until("assignment");
    const [taskId] = assigned.ids;
    const other = openSession(box.api.runner, { ...start, tasks: [{ name: "Other", version: "v1.0" }] });
    const line = (message: string) => ({
      taskIds: [taskId],
      jobIds: [job.id],
      attempts: [1],
      levels: [2],
      timeOffsetsMs: [0],
      messages: [message],
      fieldsJson: [""],
      baseTimeMs: BigInt(Date.now()),
    });
    await other.record({ results: [], telemetry: { lines: line("forged by another runner"), progress: [{ jobId: job.id, label: "forged", done: 5n }] } });
    await holder.record({ results: [], telemetry: { lines: line("from the holder"), progress: [] } });
    const lines = await box.client.observability().logs(job.id);
    expect(lines.map((l) => l.message)).toEqual(["from the holder"]);
    expect((await box.client.observability().progress(job.id)).progress).toEqual([]);
    holder.close();
    other.close();

    const refused = async (req: object) =>
      box.api.observability.getTaskLogs(req).then(
        () => undefined,
        (e) => ConnectError.from(e),
      );
    const badId = await refused({ jobId: "x" });
    expect(badId?.code).toBe(Code.InvalidArgument);
    expect(badId?.rawMessage).toMatch(/job_id must be a positive decimal number/);
    expect((await refused({ jobId: "999999" }))?.code).toBe(Code.NotFound);
    expect((await refused({ jobId: job.id, pageSize: 6000 }))?.rawMessage).toMatch(/page_size is 6000; the limit is 5000/);
    expect((await refused({ jobId: job.id, after: "-1" }))?.rawMessage).toMatch(/after must be a positive decimal number/);
  });
});

describe("process task output", () => {
  const box = useSandbox();

  it("becomes the attempt's log lines: stdout at info, stderr at error, in order per stream", async () => {
    const script = "console.log('out 1'); console.error('err 1'); console.log('out 2\\nout 3'); process.stdout.write('no newline at the end')";
    const runner = box.client.runner("default", { processes: { "Shout@v1.0": [process.execPath, "-e", script] }, echoTaskLogs: false });
    const running = runner.runForever();
    try {
      const job = await box.client.jobs().submit("shout", namedTask("Shout", "v1.0"));
      await jobInState(box.client, job.id, ["completed"]);
      const lines = await box.client.observability().logs(job.id);
      const of = (level: string) => lines.filter((l) => l.level === level).map((l) => l.message);
      expect(of("info")).toEqual(["out 1", "out 2", "out 3", "no newline at the end"]);
      expect(of("error")).toEqual(["err 1"]);
    } finally {
      await runner.stop();
      await running;
    }
  });
});

describe("task logs over the limit", () => {
  const box = useSandbox({ observability: { ...ObservabilityDefaults, taskLogChars: 2_000 } });

  it("keeps an attempt's lines up to the server's limit and says the rest was not kept", async () => {
    const runner = box.client.runner("default", { tasks, echoTaskLogs: false });
    const running = runner.runForever();
    try {
      const job = await box.client.jobs().submit("flood", new Flood());
      await jobInState(box.client, job.id, ["completed"]);
      const res = await box.api.observability.getTaskLogs({ jobId: job.id });
      expect(res.truncated).toBe(true);
      expect(res.lines.length).toBeGreaterThan(0);
      expect(res.lines.length).toBeLessThan(50);
      expect(res.lines[0].message).toMatch(/^0 x+$/);
      expect(res.lines.at(-1)?.message).toBe("sluice: this attempt wrote more than 2000 characters of log lines; later lines are not kept");
    } finally {
      await runner.stop();
      await running;
    }
  });
});
