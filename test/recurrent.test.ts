import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { Client, type ExecutionContext, type Job, Task } from "../runner/index.js";
import { type SluiceServer, buildServer } from "../server/build-server.js";
import { createDatabase, eventually, jobInState, quiet, sluice, useSandbox } from "./support/harness.js";
import { ManualClock } from "./support/manual-clock.js";

/** Ticks seen by the Tick task, by the job it ran in. */
const ticks: { jobId: string; label: string }[] = [];

class Tick extends Task<{ label: string }> {
  static identifier = { name: "Tick", version: "v1.0" };
  execute(context: ExecutionContext) {
    ticks.push({ jobId: context.jobId, label: this.input.label });
  }
}

/** Jobs a recurrent task submitted, oldest tick first. */
async function jobsOf(client: Client, recurrentTaskId: string): Promise<Job[]> {
  const all = await client.jobs().list({ limit: 1000 });
  return all.filter((j) => j.recurrentTaskId === recurrentTaskId).sort((a, b) => a.tickAt!.getTime() - b.tickAt!.getTime());
}

/** The tick times of jobs, in seconds. */
const seconds = (jobs: Job[]) => jobs.map((j) => j.tickAt!.getTime() / 1000);

/**
 * Moves the servers' clock by `ms` and waits until each server's scheduler has
 * handled the new time: what it submits is then in the database, and what it
 * did not submit never will be for that time.
 */
async function advance(clock: ManualClock, ms: number, ...servers: SluiceServer[]): Promise<void> {
  clock.advance(ms);
  for (const server of servers) await server.schedulerPass();
}

describe("cron tasks", () => {
  const clock = new ManualClock();
  const box = useSandbox({ clock });

  it("submit one job per tick, named after the task and the tick, which runners run", async () => {
    ticks.length = 0;
    const cron = await box.client.recurrentTasks().createRecurringCronTask("every-second", "default", new Tick({ label: "a" }), "* * * * * *");
    expect(cron).toMatchObject({ name: "every-second", cluster: "default", identifier: { name: "Tick", version: "v1.0" }, input: { label: "a" }, paused: false });
    expect(cron.cronTriggers[0]).toMatchObject({ expression: "* * * * * *", timeZone: "UTC" });
    // The next whole second of the server's clock.
    const next = cron.cronTriggers[0].nextTickAt!.getTime();
    expect(next).toBeGreaterThan(clock.now());
    expect(next).toBeLessThanOrEqual(clock.now() + 1000);

    const runner = box.client.runner("default", { tasks: [Tick], logger: quiet });
    const running = runner.runForever();
    for (let i = 0; i < 3; i++) await advance(clock, 1000, box.server);
    const jobs = await eventually(async () => {
      const js = await jobsOf(box.client, cron.id);
      return js.length === 3 && js.every((j) => j.state === "completed") ? js : undefined;
    });
    await box.client.recurrentTasks().delete(cron.id);
    await runner.stop();
    await running;

    // Whole, consecutive seconds; one job each; named "every-second <tick>".
    const s = seconds(jobs);
    expect(s.every(Number.isInteger)).toBe(true);
    expect(s.slice(1).map((t, i) => t - s[i])).toEqual(s.slice(1).map(() => 1));
    for (const j of jobs) expect(j.name).toBe(`every-second ${j.tickAt!.toISOString()}`);
    expect(ticks.filter((t) => t.label === "a").length).toBeGreaterThanOrEqual(3);
  });

  it("skip ticks while paused and go on after resume", async () => {
    const recurrent = box.client.recurrentTasks();
    const cron = await recurrent.createRecurringCronTask("pausable", "default", new Tick({ label: "p" }), "* * * * * *");
    await advance(clock, 1000, box.server);
    const before = (await jobsOf(box.client, cron.id)).length;
    expect(before).toBe(1);
    const paused = await recurrent.pause("pausable");
    expect(paused.paused).toBe(true);
    expect(paused.cronTriggers[0].nextTickAt).toBeUndefined();
    const pausedAt = clock.now();
    await advance(clock, 2_200, box.server);
    expect((await jobsOf(box.client, cron.id)).length).toBe(before);

    const resumed = await recurrent.resume(cron);
    expect(resumed.paused).toBe(false);
    await advance(clock, 1000, box.server);
    const after = await jobsOf(box.client, cron.id);
    expect(after).toHaveLength(before + 1);
    // No catch-up for ticks skipped while paused: the next job is for a tick after resuming.
    expect(after[before].tickAt!.getTime()).toBeGreaterThan(pausedAt + 2_000);
    await recurrent.delete(cron);
  });

  it("stop submitting when deleted; jobs already queued stay queued and can run", async () => {
    ticks.length = 0;
    const recurrent = box.client.recurrentTasks();
    const cron = await recurrent.createRecurringCronTask("to-delete", "default", new Tick({ label: "d" }), "* * * * * *");
    await advance(clock, 1000, box.server);
    await advance(clock, 1000, box.server);
    const queued = await jobsOf(box.client, cron.id);
    expect(queued).toHaveLength(2);
    await recurrent.delete("to-delete");
    await expect(recurrent.get(cron.id)).rejects.toThrow(/does not exist/);
    const left = await box.client.jobs().list({ name: "to-delete", limit: 1000 });
    expect(left.length).toBe(queued.length);
    expect(left.every((j) => j.state === "queued")).toBe(true);
    // The link to the deleted task is gone; the tick stays.
    expect(left.every((j) => j.recurrentTaskId === undefined && j.tickAt !== undefined)).toBe(true);

    await advance(clock, 1_500, box.server);
    expect((await box.client.jobs().list({ name: "to-delete", limit: 1000 })).length).toBe(left.length);
    await box.client.runner("default", { tasks: [Tick], logger: quiet }).runAll();
    const done = await box.client.jobs().list({ name: "to-delete", limit: 1000 });
    expect(done.map((j) => j.state)).toEqual(left.map(() => "completed"));
    expect(ticks.filter((t) => t.label === "d")).toHaveLength(left.length);
  });

  it("reject a bad cron expression, time zone or duplicate name with InvalidArgument/AlreadyExists and store nothing", async () => {
    const recurrent = box.client.recurrentTasks();
    const before = (await recurrent.list()).length;
    const refused = async (call: Promise<unknown>, code: Code, message: RegExp) => {
      const err = await call.then(() => undefined, ConnectError.from);
      expect(err).toBeInstanceOf(ConnectError);
      expect(Code[err!.code]).toBe(Code[code]);
      expect(err!.rawMessage).toMatch(message);
    };
    await refused(
      recurrent.createRecurringCronTask("bad", "default", new Tick({ label: "x" }), "61 * * * *"),
      Code.InvalidArgument,
      /cron_triggers\[0\]\.expression: "61 \* \* \* \*" is not a valid cron expression \(Invalid value for minute: 61\)/,
    );
    await refused(
      recurrent.createRecurringCronTask("bad", "default", new Tick({ label: "x" }), ["* * * * *", "* * *"]),
      Code.InvalidArgument,
      /cron_triggers\[1\]\.expression: "\* \* \*" is not a valid cron expression/,
    );
    await refused(
      recurrent.createRecurringCronTask("bad", "default", new Tick({ label: "x" }), "0 9 * * *", { timeZone: "Mars/Olympus" }),
      Code.InvalidArgument,
      /cron_triggers\[0\]\.time_zone: "Mars\/Olympus" is not an IANA time zone/,
    );
    await refused(recurrent.createRecurringCronTask("bad", "nowhere", new Tick({ label: "x" }), "0 9 * * *"), Code.NotFound, /cluster "nowhere" does not exist/);
    expect((await recurrent.list()).length).toBe(before);

    const once = await recurrent.createRecurringCronTask("daily", "default", new Tick({ label: "x" }), "0 9 * * *", { timeZone: "Europe/Berlin" });
    // 09:00 in Berlin is 07:00 or 08:00 UTC.
    expect([7, 8]).toContain(once.cronTriggers[0].nextTickAt!.getUTCHours());
    await refused(recurrent.createRecurringCronTask("daily", "default", new Tick({ label: "y" }), "0 9 * * *"), Code.AlreadyExists, /named "daily" already exists/);
    await refused(recurrent.delete("no-such-task"), Code.NotFound, /recurrent task "no-such-task" does not exist/);
    await recurrent.delete(once);
  });

  it("are managed from the CLI", async () => {
    const env = { SLUICE_URL: box.url };
    const created = await sluice(["recurrent", "create-cron", "cli-cron", "--task", "Tick@v1.0", "--input", '{"label":"cli"}', "--cron", "0 0 * * *", "--time-zone", "Asia/Tokyo"], env);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/cli-cron {2}Tick v1\.0 on default/);
    expect(created.stdout).toContain('cron "0 0 * * *" Asia/Tokyo');
    const listed = await sluice(["recurrent", "list", "--json"], env);
    const list = JSON.parse(listed.stdout) as { name: string; input: unknown }[];
    expect(list.find((r) => r.name === "cli-cron")?.input).toEqual({ label: "cli" });
    expect((await sluice(["recurrent", "pause", "cli-cron"], env)).stdout).toContain("PAUSED");
    expect((await sluice(["recurrent", "delete", "cli-cron"], env)).stdout).toContain("deleted recurrent task cli-cron");
    const bad = await sluice(["recurrent", "create-cron", "x", "--task", "Tick", "--cron", "not a cron"], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/expression: "not a cron" is not a valid cron expression/);
  });
});

describe("cron tasks with several servers", () => {
  let drop: (() => Promise<void>) | undefined;
  afterAll(async () => drop?.());

  it("submit exactly one job per tick with two servers, and catch up only the latest missed tick after all were down", async () => {
    const db = await createDatabase();
    drop = db.drop;
    const clock = new ManualClock();
    const start = () => buildServer({ host: "127.0.0.1", port: 0, databaseUrl: db.url, clock });
    const [a, b] = [await start(), await start()];
    const client = new Client({ url: a.url });
    const cron = await client.recurrentTasks().createRecurringCronTask("shared", "default", new Tick({ label: "s" }), "* * * * * *");
    // Both servers look at every tick; the second to look finds it handled.
    for (let i = 0; i < 4; i++) await advance(clock, 1000, a, b);
    const withBoth = await jobsOf(client, cron.id);
    const s = seconds(withBoth);
    expect(s).toHaveLength(4);
    expect(new Set(s).size).toBe(s.length);
    expect(s.slice(1).map((t, i) => t - s[i])).toEqual(s.slice(1).map(() => 1));

    // Every server down across several ticks.
    client.close();
    await Promise.all([a.stop(), b.stop()]);
    const [{ last }] = await (async () => {
      const postgres = (await import("postgres")).default;
      const sql = postgres(db.url, { max: 1 });
      try {
        return await sql<{ last: Date }[]>`SELECT max(tick_at) AS last FROM jobs`;
      } finally {
        await sql.end();
      }
    })();
    clock.advance(3_500);
    const c = await start();
    const client2 = new Client({ url: c.url });
    await c.schedulerPass();
    await advance(clock, 1000, c);
    const after = await jobsOf(client2, cron.id);
    const resumed = seconds(after.filter((j) => j.tickAt!.getTime() > last.getTime()));
    expect(resumed).toHaveLength(2);
    // The first job after the restart is for the latest tick missed while down,
    // not one per missed tick: a gap of at least three seconds, then one a second.
    expect(resumed[0] - last.getTime() / 1000).toBeGreaterThanOrEqual(3);
    expect(resumed[1] - resumed[0]).toBe(1);
    client2.close();
    await c.stop();
  });
});

describe("one-off scheduled jobs", () => {
  const clock = new ManualClock();
  const box = useSandbox({ clock });
  let folder: string;
  afterAll(async () => folder && rm(folder, { recursive: true, force: true }));

  it("stay scheduled until their time, then run; a cancelled one never runs", async () => {
    ticks.length = 0;
    const jobs = box.client.jobs();
    const startAt = new Date(clock.now() + 60_000);
    const kept = await jobs.submit("later", new Tick({ label: "kept" }), { startAt });
    const dropped = await jobs.submit("later, cancelled", new Tick({ label: "dropped" }), { startAt });
    expect(kept).toMatchObject({ state: "scheduled", startAt });
    expect((await jobs.get(kept.id)).tasks).toEqual([]);
    expect((await jobs.list({ states: ["scheduled"] })).map((j) => j.id).sort()).toEqual([kept.id, dropped.id].sort());
    expect((await jobs.cancel(dropped.id)).state).toBe("cancelled");
    await expect(jobs.retry(dropped.id)).rejects.toThrow(/cancelled before its scheduled start and has no tasks to retry/);

    const runner = box.client.runner("default", { tasks: [Tick], logger: quiet });
    const running = runner.runForever();
    // A moment before its time it is still scheduled, without tasks.
    await advance(clock, 59_999, box.server);
    expect(await jobs.get(kept.id)).toMatchObject({ state: "scheduled", tasks: [] });
    await advance(clock, 1, box.server);
    const done = await jobInState(box.client, kept.id, ["completed"]);
    await runner.stop();
    await running;

    expect(done.startAt).toEqual(startAt);
    expect(ticks.map((t) => t.label)).toEqual(["kept"]);
    expect(await jobs.get(dropped.id)).toMatchObject({ state: "cancelled", tasks: [] });
  });

  it("a job scheduled in the past is queued at once", async () => {
    const job = await box.client.jobs().submit("past", new Tick({ label: "past" }), { startAt: new Date(clock.now() - 60_000) });
    expect(job.state).toBe("queued");
  });

  it("write an object to a folder at their time, through the built-in task; a cancelled write never happens", async () => {
    folder = await mkdtemp(join(tmpdir(), "sluice-writes-"));
    const jobs = box.client.jobs();
    const location = await box.client.recurrentTasks().registerStorageLocation({ type: "fs", location: folder });
    const at = new Date(clock.now() + 60_000);
    const write = await jobs.scheduleObjectWrite({ location, key: "reports/today.txt", content: "hello at a set time", at });
    const cancelled = await jobs.scheduleObjectWrite({ location, key: "never.txt", content: "no", at });
    await jobs.cancel(cancelled.id);
    expect(write.state).toBe("scheduled");

    const runner = box.client.runner("default", { tasks: [Tick], logger: quiet, builtins: true });
    const running = runner.runForever();
    await advance(clock, 59_999, box.server);
    expect((await jobs.get(write.id)).state).toBe("scheduled");
    expect(existsSync(join(folder, "reports", "today.txt"))).toBe(false);
    await advance(clock, 1, box.server);
    await jobInState(box.client, write.id, ["completed"]);
    await runner.stop();
    await running;
    expect(await readFile(join(folder, "reports", "today.txt"), "utf8")).toBe("hello at a set time");
    expect(existsSync(join(folder, "never.txt"))).toBe(false);
    expect((await jobs.get(write.id)).tasks[0].identifier).toEqual({ name: "sluice.WriteObject", version: "v2.0" });

    // A key that climbs out of the folder fails the job with a clear error, after its retries.
    const escape = await jobs.scheduleObjectWrite({ location, key: "../escape.txt", content: "x", at: new Date(), maxRetries: 0 });
    await box.client.runner("default", { tasks: [Tick], logger: quiet, builtins: true }).runAll();
    const failed = await jobs.get(escape.id);
    expect(failed.state).toBe("failed");
    expect(failed.tasks[0].lastError?.message).toMatch(/key "..\/escape.txt" is invalid/);
  });

  it("are scheduled and listed from the CLI", async () => {
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const res = await sluice(["jobs", "submit", "in an hour", "--task", "Tick@v1.0", "--input", '{"label":"cli"}', "--start-at", at], { SLUICE_URL: box.url });
    expect(res.stdout).toMatch(/submitted job \d+ \(scheduled until /);
    const bad = await sluice(["jobs", "submit", "x", "--task", "Tick", "--start-at", "tomorrow-ish"], { SLUICE_URL: box.url });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('"tomorrow-ish" is not a time');
  });
});
