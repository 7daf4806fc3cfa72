#!/usr/bin/env node
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { Command, InvalidArgumentError, Option } from "commander";
import { Client } from "../client.js";
import type { Job, JobDetails, JobStateName } from "../jobs.js";
import type { RecurrentTaskInfo } from "../recurrent.js";
import { Task, type TaskClass } from "../task.js";

const program = new Command("sluice")
  .description("Sluice: a workflow orchestrator for data in object storage")
  .showHelpAfterError()
  .addOption(new Option("--url <url>", "the server's URL").env("SLUICE_URL").default("http://127.0.0.1:8080"))
  .option("--json", "print results as JSON");

const int = (name: string) => (raw: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
};

let shared: Client | undefined;
function client(): Client {
  shared ??= new Client({ url: program.opts().url });
  return shared;
}

function print(value: unknown, text: () => string): void {
  console.log(program.opts().json ? JSON.stringify(value, null, 2) : text());
}

const time = (d?: Date) => (d ? d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "-");

program
  .command("server")
  .description("start a server (an embedded PostgreSQL unless DATABASE_URL is set)")
  .option("--host <host>", "interface to listen on (SLUICE_HOST, default 127.0.0.1)")
  .option("--port <port>", "port to listen on (SLUICE_PORT, default 8080)", int("--port"))
  .option("--data-dir <dir>", "where the embedded PostgreSQL keeps its data (SLUICE_DATA_DIR, default .sluice)")
  .action(async (opts: { host?: string; port?: number; dataDir?: string }) => {
    const { runServer } = await import("../../server/main.js");
    await runServer({
      ...(opts.host !== undefined && { host: opts.host }),
      ...(opts.port !== undefined && { port: opts.port }),
      ...(opts.dataDir !== undefined && { dataDir: opts.dataDir }),
    });
  });

/** The Task subclasses a module exports. */
async function taskClassesOf(file: string): Promise<TaskClass[]> {
  const mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  return Object.values(mod).filter((v): v is TaskClass => typeof v === "function" && v.prototype instanceof Task);
}

program
  .command("runner")
  .description("run the tasks exported by the given modules")
  .argument("<modules...>", "TypeScript or JavaScript files exporting Task classes")
  .option("--cluster <slug>", "the cluster to take work from", "default")
  .option("--concurrency <n>", "tasks run at once", int("--concurrency"), 1)
  .option("--prefetch <n>", "tasks leased ahead beyond concurrency (default: concurrency)", int("--prefetch"))
  .option("--all", "exit once no work is left instead of running forever")
  .action(async (modules: string[], opts: { cluster: string; concurrency: number; prefetch?: number; all?: boolean }) => {
    const tasks = (await Promise.all(modules.map(taskClassesOf))).flat();
    if (tasks.length === 0) throw new InvalidArgumentError(`no Task classes are exported by ${modules.join(", ")}`);
    const c = client();
    const runner = c.runner(opts.cluster, { tasks, concurrency: opts.concurrency, prefetch: opts.prefetch });
    // Listeners stay installed (see server/main.ts); a second signal exits at once.
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(1);
      stopping = true;
      console.error("stopping: finishing running tasks");
      void runner.stop();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    console.error(`runner ${runner.id} on cluster ${opts.cluster} at ${c.url}: ${tasks.map((t) => t.name).join(", ")}`);
    await (opts.all ? runner.runAll() : runner.runForever());
  });

function dateOption(raw: string): Date {
  const d = new Date(raw);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`"${raw}" is not a time; use ISO 8601, e.g. 2026-12-24T18:00:00Z`);
  return d;
}

/** A task given on the command line as NAME[@vX.Y] and a JSON input. */
function namedTask(identifier: string, inputJson: string): Task {
  const [taskName, version = "v0.0"] = identifier.split("@");
  let input: unknown;
  try {
    input = JSON.parse(inputJson);
  } catch (e) {
    throw new InvalidArgumentError(`--input is not JSON: ${(e as Error).message}`);
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw new InvalidArgumentError("--input must be a JSON object");
  const Named = class extends Task {
    static identifier = { name: taskName, version };
    execute() {}
  };
  return new Named(input as Record<string, unknown>);
}

const jobs = program.command("jobs").description("submit, list, show, cancel and retry jobs");

function jobLine(j: Job): string {
  const c = j.taskCounts;
  return `${j.id.padStart(8)}  ${j.state.padEnd(9)}  ${j.cluster.padEnd(12)}  ${time(j.createdAt)}  ${c.computed}/${c.queued + c.running + c.computed + c.failed + c.cancelled} computed  ${j.name}`;
}

function jobText(j: JobDetails): string {
  const lines = [
    `job ${j.id}: ${j.name}`,
    `  state      ${j.state}`,
    `  cluster    ${j.cluster}`,
    `  created    ${time(j.createdAt)}`,
    `  started    ${time(j.startedAt)}`,
    `  finished   ${time(j.finishedAt)}`,
    `  tasks      ${Object.entries(j.taskCounts).map(([k, v]) => `${v} ${k}`).join(", ")}`,
    ...(j.startAt ? [`  start at   ${time(j.startAt)}`] : []),
    ...(j.tickAt ? [`  cron tick  ${time(j.tickAt)} of recurrent task ${j.recurrentTaskId ?? "(deleted)"}`] : []),
    "",
  ];
  for (const t of j.tasks) {
    const deps = t.dependsOn.length > 0 ? `  after ${t.dependsOn.join(",")}` : "";
    lines.push(
      `  task ${t.id}  ${t.state.padEnd(9)}  ${t.display ?? t.identifier.name} ${t.identifier.version}  attempts ${t.attempts}, failures ${t.failures}, max retries ${t.maxRetries}${deps}`,
    );
    if (t.lastError) {
      lines.push(`    error (attempt ${t.lastError.attempt}): ${t.lastError.message}`);
      for (const s of t.lastError.stack.split("\n").slice(1)) lines.push(`      ${s.trim()}`);
    }
  }
  return lines.join("\n");
}

jobs
  .command("submit")
  .description("submit a job of one task")
  .argument("<name>", "the job's name")
  .requiredOption("--task <name[@version]>", "the task's identifier, e.g. Hello or Hello@v1.0")
  .option("--input <json>", "the task's input as a JSON object", "{}")
  .option("--cluster <slug>", "cluster to run it on", "default")
  .option("--max-retries <n>", "retries after the task throws", int("--max-retries"), 0)
  .option("--start-at <time>", "keep the job scheduled until this time (ISO 8601, e.g. 2026-12-24T18:00:00Z)", dateOption)
  .action(async (name: string, opts: { task: string; input: string; cluster: string; maxRetries: number; startAt?: Date }) => {
    const job = await client()
      .jobs()
      .submit(name, namedTask(opts.task, opts.input), { cluster: opts.cluster, maxRetries: opts.maxRetries, startAt: opts.startAt });
    print(job, () => `submitted job ${job.id} (${job.state}${job.startAt ? ` until ${time(job.startAt)}` : ""})`);
  });

jobs
  .command("list")
  .description("list jobs, newest first")
  .option("--state <state...>", "only jobs in these states (queued, started, completed, failed, cancelled)")
  .option("--cluster <slug>", "only jobs of this cluster")
  .option("--name <text>", "only jobs whose name contains this")
  .option("--limit <n>", "at most this many", int("--limit"), 50)
  .action(async (opts: { state?: JobStateName[]; cluster?: string; name?: string; limit: number }) => {
    const list = await client().jobs().list({ states: opts.state, cluster: opts.cluster, name: opts.name, limit: opts.limit });
    print(list, () => (list.length === 0 ? "no jobs" : list.map(jobLine).join("\n")));
  });

jobs
  .command("show")
  .description("show a job, its tasks and their errors")
  .argument("<id>", "the job's id")
  .action(async (id: string) => {
    const job = await client().jobs().get(id);
    print(job, () => jobText(job));
  });

jobs
  .command("cancel")
  .description("cancel a queued or started job")
  .argument("<id>", "the job's id")
  .action(async (id: string) => {
    const job = await client().jobs().cancel(id);
    print(job, () => `job ${job.id} is ${job.state}`);
  });

jobs
  .command("retry")
  .description("queue the failed and cancelled tasks of a job again")
  .argument("<id>", "the job's id")
  .action(async (id: string) => {
    const job = await client().jobs().retry(id);
    print(job, () => `job ${job.id} is ${job.state}`);
  });

const recurrent = program.command("recurrent").description("create, list, pause, resume and delete recurrent tasks");

function recurrentText(r: RecurrentTaskInfo): string {
  const triggers = r.cronTriggers.map((t) => `cron "${t.expression}" ${t.timeZone}, next ${r.paused ? "(paused)" : time(t.nextTickAt)}`);
  return [
    `${r.id.padStart(6)}  ${r.name}  ${r.identifier.name} ${r.identifier.version} on ${r.cluster}${r.paused ? "  PAUSED" : ""}`,
    ...triggers.map((t) => `        ${t}`),
    `        last job ${r.lastJobId ?? "-"} (tick ${time(r.lastTickAt)})`,
  ].join("\n");
}

recurrent
  .command("create-cron")
  .description("submit a job of a task at every tick of a cron expression")
  .argument("<name>", "a unique name; jobs are named after it and the tick")
  .requiredOption("--task <name[@version]>", "the task each job starts from, e.g. Report@v1.0")
  .requiredOption("--cron <expression...>", 'cron expression(s): five fields, or six with seconds first, e.g. "*/10 * * * * *"')
  .option("--input <json>", "the task's input as a JSON object", "{}")
  .option("--time-zone <tz>", "IANA time zone of the expressions", "UTC")
  .option("--cluster <slug>", "cluster to submit the jobs to", "default")
  .option("--max-retries <n>", "retries of each job's root task", int("--max-retries"), 0)
  .action(async (name: string, opts: { task: string; cron: string[]; input: string; timeZone: string; cluster: string; maxRetries: number }) => {
    const r = await client()
      .recurrentTasks()
      .createRecurringCronTask(name, opts.cluster, namedTask(opts.task, opts.input), opts.cron, { timeZone: opts.timeZone, maxRetries: opts.maxRetries });
    print(r, () => `created recurrent task ${r.id}\n${recurrentText(r)}`);
  });

recurrent
  .command("list")
  .description("list recurrent tasks")
  .action(async () => {
    const list = await client().recurrentTasks().list();
    print(list, () => (list.length === 0 ? "no recurrent tasks" : list.map(recurrentText).join("\n")));
  });

for (const [verb, text] of [
  ["show", "show a recurrent task"],
  ["pause", "stop submitting jobs until resumed"],
  ["resume", "submit jobs again from the next tick"],
] as const) {
  recurrent
    .command(verb)
    .description(text)
    .argument("<id-or-name>", "the recurrent task's id or name")
    .action(async (idOrName: string) => {
      const api = client().recurrentTasks();
      const r = verb === "show" ? await api.get(idOrName) : verb === "pause" ? await api.pause(idOrName) : await api.resume(idOrName);
      print(r, () => recurrentText(r));
    });
}

recurrent
  .command("delete")
  .description("delete a recurrent task; the jobs it submitted stay")
  .argument("<id-or-name>", "the recurrent task's id or name")
  .action(async (idOrName: string) => {
    await client().recurrentTasks().delete(idOrName);
    print({ deleted: idOrName }, () => `deleted recurrent task ${idOrName}`);
  });

const clusters = program.command("clusters").description("create, list and delete clusters");

clusters
  .command("create")
  .description("create a cluster")
  .argument("<slug>", "the cluster's slug: lowercase letters, digits and dashes")
  .option("--display-name <name>", "a name to show")
  .action(async (slug: string, opts: { displayName?: string }) => {
    const cluster = await client().clusters().create(slug, opts.displayName);
    print(cluster, () => `created cluster ${cluster.slug}`);
  });

clusters
  .command("list")
  .description("list clusters")
  .action(async () => {
    const list = await client().clusters().list();
    print(list, () => list.map((c) => `${c.slug.padEnd(20)}  ${c.displayName}`).join("\n"));
  });

clusters
  .command("delete")
  .description("delete a cluster that has no unfinished jobs")
  .argument("<slug>", "the cluster's slug")
  .action(async (slug: string) => {
    await client().clusters().delete(slug);
    print({ deleted: slug }, () => `deleted cluster ${slug}`);
  });

try {
  await program.parseAsync();
} catch (e) {
  if (e instanceof ConnectError) {
    console.error(`error: ${e.rawMessage} (${Code[e.code]})`);
  } else if (e instanceof InvalidArgumentError) {
    console.error(`error: ${e.message}`);
  } else {
    console.error(e instanceof Error ? `error: ${e.message}` : e);
  }
  process.exitCode = 1;
} finally {
  shared?.close();
}

