#!/usr/bin/env node
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { Command, InvalidArgumentError, Option } from "commander";
import { onStopSignal } from "./signals.js";
import { Client } from "../sdk/client.js";
import type { Job, JobDetails, JobStateName } from "../sdk/jobs.js";
import { JOB_STATE_NAMES } from "../wire/states.js";
import type { RecurrentTaskInfo } from "../sdk/recurrent.js";
import type { StorageLocation, StorageTypeName } from "../sdk/storage.js";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { StorageService } from "../../gen/sluice/v1/storage_service_pb.js";
import { Task, type TaskClass } from "../sdk/task.js";
import { AmazonS3Cache, type CacheBackend, GoogleStorageCache, InMemoryCache, LocalFileSystemCache } from "../sdk/cache/index.js";
import type { TokenScopeName } from "../sdk/tokens.js";
import { addObservabilityCommands, progressText, unrunnableWarning, waitForJob } from "./observe.js";
import { identifierOf } from "../sdk/task.js";
import { shutdownTracing } from "../wire/tracing.js";
import { addFileCommands } from "./file-commands.js";
import { collectProcess, kubernetesOf, processesOf } from "./process-option.js";

const program = new Command("sluice")
  .description("Sluice: a workflow orchestrator for data in object storage")
  .showHelpAfterError()
  .addOption(new Option("--url <url>", "the server's URL").env("SLUICE_URL").default("http://127.0.0.1:8080"))
  .addOption(new Option("--auth-token <token>", "the bearer token to present to the server").env("SLUICE_TOKEN"))
  .option("--json", "print results as JSON");

const int = (name: string) => (raw: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
};

let shared: Client | undefined;
function client(): Client {
  shared ??= new Client({ url: program.opts().url, token: program.opts().authToken });
  return shared;
}

function print(value: unknown, text: () => string): void {
  console.log(program.opts().json ? JSON.stringify(value, null, 2) : text());
}

const time = (d?: Date) => (d ? d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "-");

program
  .command("server")
  .description("start a server (needs the sluice-server package; see sluice server --help)")
  .helpOption(false)
  .allowUnknownOption()
  .allowExcessArguments()
  .argument("[args...]", "the server's options")
  .action(async (args: string[]) => {
    await (await loadServer()).main(args, "sluice server");
  });

/**
 * The server's command line, from the sluice-server package: `#server` is
 * mapped in package.json (to server/cli.ts in the repository, to the
 * sluice-server package in the published SDK, which does not contain it).
 */
async function loadServer(): Promise<{ main(args: string[], name: string): Promise<void> }> {
  const specifier = "#server";
  try {
    return (await import(specifier)) as { main(args: string[], name: string): Promise<void> };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ERR_MODULE_NOT_FOUND" && String((e as Error).message).includes("sluice-server")) {
      throw new Error("`sluice server` needs the server package: npm install sluice-server (or run npx sluice-server)", { cause: e });
    }
    throw e;
  }
}

const TYPESCRIPT = /\.[cm]?tsx?$/;

/**
 * Makes TypeScript task modules importable: Node's own type stripping where
 * it has it (22.18 and later), else tsx when the project has it installed.
 */
async function loadTypeScript(files: string[]): Promise<void> {
  const ts = files.filter((f) => TYPESCRIPT.test(f));
  // This CLI runs as TypeScript itself in the repository: a loader is registered already.
  if (ts.length === 0 || TYPESCRIPT.test(fileURLToPath(import.meta.url))) return;
  if ((process.features as { typescript?: string | false }).typescript) return;
  try {
    // Not a dependency of sluice: found in the user's project, if there.
    const tsx = "tsx/esm/api";
    const { register } = (await import(tsx)) as { register(): void };
    register();
  } catch {
    throw new InvalidArgumentError(
      `${ts.join(", ")} ${ts.length > 1 ? "are" : "is"} TypeScript: install tsx in your project (npm install -D tsx), use Node 22.18 or later, or give the compiled .js file`,
    );
  }
}

/** The Task subclasses a module exports. */
async function taskClassesOf(file: string): Promise<TaskClass[]> {
  const mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  return Object.values(mod).filter((v): v is TaskClass => typeof v === "function" && v.prototype instanceof Task);
}

/** A job cache from `--cache`: fs:FOLDER, s3://BUCKET/PREFIX, gcs://BUCKET/PREFIX or memory. */
function cacheOf(spec: string, opts: { s3Endpoint?: string; s3Region?: string }): CacheBackend {
  if (spec === "memory") return new InMemoryCache();
  if (spec.startsWith("fs:")) {
    const folder = spec.slice("fs:".length);
    if (!folder) throw new InvalidArgumentError("--cache fs: needs a folder, e.g. fs:/shared/sluice-cache");
    return new LocalFileSystemCache(resolve(folder));
  }
  const m = /^(s3|gcs):\/\/([^/]+)\/?(.*)$/.exec(spec);
  if (!m) throw new InvalidArgumentError(`--cache ${spec}: use fs:FOLDER, s3://BUCKET/PREFIX, gcs://BUCKET/PREFIX or memory`);
  const [, kind, bucket, prefix] = m;
  if (kind === "s3") return new AmazonS3Cache(bucket, { prefix, endpoint: opts.s3Endpoint, region: opts.s3Region });
  if (opts.s3Endpoint || opts.s3Region) throw new InvalidArgumentError("--s3-endpoint and --s3-region go with an s3:// cache");
  return new GoogleStorageCache(bucket, { prefix });
}

program
  .command("runner")
  .description("run the tasks exported by the given modules, and commands as process tasks")
  .argument("[modules...]", "JavaScript files exporting Task classes (TypeScript with tsx installed, or on Node 22.18 and later)")
  .option("--process <NAME@vX.Y=COMMAND>", "run a task as this command line, in any language (repeatable; docs/process-tasks.md)", collectProcess)
  .option("--process-timeout <seconds>", "fail a --process task that runs longer", int("--process-timeout"))
  .option("--kubernetes", "run the --process tasks as Kubernetes Jobs (kubeconfig or in-cluster account)")
  .option("--kube-namespace <ns>", "the namespace of the Jobs (default: the kubeconfig context's)")
  .option("--kube-image <image>", "the container image of the Jobs")
  .option("--kube-service-account <name>", "the service account of the Jobs' pods")
  .option("--runner-id <uuid>", "keep this id across restarts (with --kubernetes: adopt the Jobs it started)")
  .option("--cluster <slug>", "the cluster to take work from", "default")
  .option("--concurrency <n>", "tasks run at once", int("--concurrency"), 1)
  .option("--prefetch <n>", "tasks leased ahead beyond concurrency (default: concurrency)", int("--prefetch"))
  .option("--all", "exit once no work is left instead of running forever")
  .option("--builtins", "also run Sluice's built-in tasks (scheduled object writes)")
  .option("--site <site>", "the runner's site: it also runs the tasks bound to that site")
  .option("--cache <where>", "the job cache: fs:FOLDER, s3://BUCKET/PREFIX, gcs://BUCKET/PREFIX (default: memory, this runner only)")
  .option("--s3-endpoint <url>", "an S3-compatible endpoint for an s3:// cache")
  .option("--s3-region <region>", "the region of an s3:// cache's bucket (default AWS_REGION, else us-east-1)")
  .action(
    async (
      modules: string[],
      opts: { cluster: string; concurrency: number; prefetch?: number; all?: boolean; builtins?: boolean; cache?: string; s3Endpoint?: string; s3Region?: string; process?: Record<string, string[]>; processTimeout?: number; runnerId?: string; site?: string } & Parameters<typeof kubernetesOf>[0],
    ) => {
      const cache = opts.cache === undefined ? undefined : cacheOf(opts.cache, opts);
      if (opts.cache === undefined && (opts.s3Endpoint || opts.s3Region)) throw new InvalidArgumentError("--s3-endpoint and --s3-region go with --cache s3://...");
      await loadTypeScript(modules);
      const tasks = (await Promise.all(modules.map(taskClassesOf))).flat();
      if (modules.length > 0 && tasks.length === 0) throw new InvalidArgumentError(`no Task classes are exported by ${modules.join(", ")}`);
      const processes = processesOf(opts);
      if (tasks.length === 0 && Object.keys(processes).length === 0) throw new InvalidArgumentError("give modules exporting Task classes, or --process NAME@vX.Y=COMMAND");
      const c = client();
      const runner = c.runner(opts.cluster, { tasks, processes, kubernetes: kubernetesOf(opts), runnerId: opts.runnerId, concurrency: opts.concurrency, prefetch: opts.prefetch, builtins: opts.builtins, cache, site: opts.site });
      onStopSignal(() => {
        console.error("stopping: finishing running tasks");
        void runner.stop();
      });
      console.error(`runner ${runner.id} on cluster ${opts.cluster} at ${c.url}: ${[...tasks.map((t) => t.name), ...Object.keys(processes)].join(", ")}${opts.cache ? ` (cache ${opts.cache})` : ""}`);
      await (opts.all ? runner.runAll() : runner.runForever());
    },
  );

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

interface SubmitCommandOptions {
  task: string;
  input: string;
  cluster: string;
  maxRetries: number;
  startAt?: Date;
  retryDelay?: number;
  retryMaxDelay?: number;
  timeout?: number;
  wait?: boolean;
}

const jobs = program.command("jobs").description("submit, list, show, cancel and retry jobs");
addFileCommands(jobs, client, () => program.opts().json === true);

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
    if (t.hookStatus) lines.push(`    status (${time(t.hookStatus.at)}): ${JSON.stringify(t.hookStatus.value)}`);
    if (t.lastError) {
      lines.push(`    error (attempt ${t.lastError.attempt}): ${t.lastError.message}`);
      for (const s of t.lastError.stack.split("\n").slice(1)) lines.push(`      ${s.trim()}`);
    }
    if (t.output?.stderr && t.state !== "failed") lines.push(`    stderr: ${t.output.stderr.trimEnd().split("\n").slice(-5).join("\n      ")}`);
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
  .option("--retry-delay <ms>", "wait this long before the first retry, doubling each time (exponential backoff)", int("--retry-delay"))
  .option("--retry-max-delay <ms>", "the longest wait between retries", int("--retry-max-delay"))
  .option("--timeout <ms>", "fail an attempt that runs longer than this", int("--timeout"))
  .option("--wait", "follow the job to its end with its progress; exit 1 unless it completed")
  .action(async (name: string, opts: SubmitCommandOptions) => {
    const task = namedTask(opts.task, opts.input);
    if (opts.retryMaxDelay !== undefined && opts.retryDelay === undefined) throw new InvalidArgumentError("--retry-max-delay goes with --retry-delay");
    const job = await client()
      .jobs()
      .submit(name, task, {
        cluster: opts.cluster,
        maxRetries: opts.maxRetries,
        startAt: opts.startAt,
        retryBackoff: opts.retryDelay === undefined ? undefined : { initialDelayMs: opts.retryDelay, maxDelayMs: opts.retryMaxDelay },
        timeoutMs: opts.timeout,
      });
    print(job, () => `submitted job ${job.id} (${job.state}${job.startAt ? ` until ${time(job.startAt)}` : ""})`);
    const warning = await unrunnableWarning(client(), opts.cluster, identifierOf(task));
    if (warning) console.error(warning);
    if (opts.wait) {
      const state = await waitForJob(client(), job.id);
      if (state !== "completed") {
        console.error(`job ${job.id} ${state}: sluice jobs show ${job.id} says why`);
        process.exitCode = 1;
      }
    }
  });

jobs
  .command("list")
  .description("list jobs, newest first")
  .addOption(new Option("--state <state...>", "only jobs in these states").choices(JOB_STATE_NAMES))
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
    // One after the other: a job that does not exist is reported by the first, always the same way.
    const job = await client().jobs().get(id);
    const progress = await client().observability().progress(id);
    print({ ...job, progress: progress.progress, unrunnable: progress.unrunnable }, () => jobText(job) + progressText(progress));
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

addObservabilityCommands(program, jobs, client, print);

const recurrent = program.command("recurrent").description("create, list, pause, resume and delete recurrent tasks");

function recurrentText(r: RecurrentTaskInfo): string {
  const triggers = [
    ...r.cronTriggers.map((t) => `cron "${t.expression}" ${t.timeZone}, next ${r.paused ? "(paused)" : time(t.nextTickAt)}`),
    ...r.storageEventTriggers.map((t) => `objects "${t.glob}" in storage location ${t.locationId}`),
  ];
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

const storage = program.command("storage").description("register, list and delete storage locations");

function locationText(l: StorageLocation): string {
  const extra = [
    l.endpoint && `endpoint ${l.endpoint}`,
    l.region && `region ${l.region}`,
    l.sqsQueueUrl && `sqs ${l.sqsQueueUrl}`,
    l.reconcileIntervalSeconds > 0 ? `listed every ${l.reconcileIntervalSeconds}s` : "not listed",
    l.pushPath && (l.pushToken ? `push to ${l.pushPath}?token=${l.pushToken}` : `push to ${l.pushPath} with its push token`),
  ].filter(Boolean);
  return `${l.id.padStart(6)}  ${l.type.padEnd(3)}  ${l.location}  (${extra.join(", ")})`;
}

storage
  .command("register")
  .description("register a bucket or folder; the server checks that it can reach it")
  .argument("<location>", 'GCS "project:bucket", an S3 bucket name, or an absolute folder path')
  .addOption(new Option("--type <type>", "the kind of store").choices(["gcs", "s3", "fs"]).makeOptionMandatory())
  .option("--endpoint <url>", "S3: an S3-compatible endpoint")
  .option("--region <region>", "S3: the bucket's region")
  .option("--sqs-queue-url <url>", "S3: an SQS queue that receives the bucket's event notifications")
  .option("--reconcile-interval <seconds>", "list the location this often for lost events (0: never)", int("--reconcile-interval"))
  .option("--external-watcher", "FS: a `sluice watch` beside the folder reports its events, not the server")
  .action(async (location: string, opts: { type: StorageTypeName; endpoint?: string; region?: string; sqsQueueUrl?: string; reconcileInterval?: number; externalWatcher?: boolean }) => {
    const l = await client().recurrentTasks().registerStorageLocation({
      type: opts.type,
      location,
      endpoint: opts.endpoint,
      region: opts.region,
      sqsQueueUrl: opts.sqsQueueUrl,
      reconcileIntervalSeconds: opts.reconcileInterval,
      externalWatcher: opts.externalWatcher,
    });
    print(l, () => `registered storage location ${l.id}\n${locationText(l)}${opts.externalWatcher ? `\nwatch it with: sluice watch ${l.location} --location ${l.id} --token ${l.pushToken}` : ""}`);
  });

storage
  .command("list")
  .description("list storage locations")
  .action(async () => {
    const list = await client().recurrentTasks().storageLocations();
    print(list, () => (list.length === 0 ? "no storage locations" : list.map(locationText).join("\n")));
  });

storage
  .command("rotate-token")
  .description("give a location a new push token (the old one stops working) and print it")
  .argument("<id>", "the location's id")
  .action(async (id: string) => {
    const l = await client().recurrentTasks().rotatePushToken(id);
    print(l, () => `new push token of storage location ${l.id}: ${l.pushToken}\n${locationText(l)}`);
  });

storage
  .command("delete")
  .description("delete a storage location no storage event task uses")
  .argument("<id>", "the location's id")
  .action(async (id: string) => {
    await client().recurrentTasks().deleteStorageLocation(id);
    print({ deleted: id }, () => `deleted storage location ${id}`);
  });

recurrent
  .command("create-storage")
  .description("submit a job of a task for every object created or modified in a location whose key matches a glob")
  .argument("<name>", "a unique name; jobs are named after it and the object's key")
  .requiredOption("--task <name[@version]>", "the storage event task each job starts from, e.g. LogObject@v1.0")
  .requiredOption("--trigger <location-id:glob...>", 'triggers, e.g. 3:"**.txt"')
  .option("--input <json>", "the task's input as a JSON object", "{}")
  .option("--cluster <slug>", "cluster to submit the jobs to", "default")
  .option("--max-retries <n>", "retries of each job's root task", int("--max-retries"), 0)
  .action(async (name: string, opts: { task: string; trigger: string[]; input: string; cluster: string; maxRetries: number }) => {
    const triggers = opts.trigger.map((t) => {
      const at = t.indexOf(":");
      if (at < 1) throw new InvalidArgumentError(`--trigger ${JSON.stringify(t)} must be LOCATION_ID:GLOB, e.g. 3:**.txt`);
      return [t.slice(0, at), t.slice(at + 1)] as const;
    });
    const r = await client()
      .recurrentTasks()
      .createRecurringStorageEventTask(name, opts.cluster, namedTask(opts.task, opts.input) as never, { triggers, maxRetries: opts.maxRetries });
    print(r, () => `created recurrent task ${r.id}\n${recurrentText(r)}`);
  });

program
  .command("watch")
  .description("watch a folder and report what is created or modified in it to the server (for a location registered with --external-watcher)")
  .argument("<folder>", "the folder")
  .requiredOption("--location <id>", "the storage location's id")
  .requiredOption("--token <token>", "the location's push token (shown by `sluice storage register`)")
  .option("--state-dir <dir>", "where to keep the snapshot that catches up after a restart", ".sluice-watch")
  .option("--server <url>", "the server's URL (same as --url)")
  .action(async (folder: string, opts: { location: string; token: string; stateDir: string; server?: string }) => {
    const { FolderWatcher } = await import("./folder-watcher.js");
    if (opts.server) shared = new Client({ url: opts.server, token: program.opts().authToken });
    const c = client();
    const api = createClient(StorageService, c.transport);
    const watcher = new FolderWatcher(
      resolve(folder),
      join(resolve(opts.stateDir), `location-${opts.location}.snapshot`),
      async (changes) => {
        const res = await api.reportObjectEvents({
          locationId: opts.location,
          token: opts.token,
          changes: changes.map((ch) => ({ key: ch.key, version: ch.version, modifiedAt: ch.modifiedAt ? timestampFromDate(ch.modifiedAt) : undefined })),
        });
        console.log(`reported ${changes.length} change(s), ${res.jobsSubmitted} job(s) submitted`);
      },
      (e) => console.error(`watch: ${(e as Error).message}`),
    );
    await watcher.start();
    console.log(`watching ${resolve(folder)} for storage location ${opts.location} on ${c.url}`);
    await new Promise<void>((done) => {
      onStopSignal(() => void watcher.stop().then(done, done));
    });
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

const tokens = program.command("tokens").description("create, list and revoke bearer tokens (needs an admin token)");

const collect = (value: string, previous: string[] = []) => [...previous, ...value.split(",").map((v) => v.trim()).filter(Boolean)];

tokens
  .command("create")
  .description("create a token; its secret is printed once")
  .argument("<name>", "a name to recognise it by")
  .requiredOption("--scope <scope>", "read, submit, runner or admin (repeatable, or comma-separated)", collect)
  .option("--cluster <slug>", "for runner tokens: a cluster it may take work from (repeatable; default all)", collect)
  .option("--expires-in <hours>", "hours until it stops working (default never)", int("--expires-in"))
  .action(async (name: string, opts: { scope: string[]; cluster?: string[]; expiresIn?: number }) => {
    for (const s of opts.scope) if (!["read", "submit", "runner", "admin"].includes(s)) throw new InvalidArgumentError(`--scope ${s}: use read, submit, runner or admin`);
    const expiresAt = opts.expiresIn ? new Date(Date.now() + opts.expiresIn * 3_600_000) : undefined;
    const token = await client().tokens().create(name, opts.scope as TokenScopeName[], { clusters: opts.cluster, expiresAt });
    print(token, () => `created token ${token.id} (${token.scopes.join(", ")}); its secret, shown this once:\n${token.secret}`);
  });

tokens
  .command("list")
  .description("list tokens (never their secrets)")
  .action(async () => {
    const list = await client().tokens().list();
    print(list, () =>
      list
        .map((t) => {
          const state = t.revokedAt ? "revoked" : t.expiresAt && t.expiresAt.getTime() <= Date.now() ? "expired" : "active";
          return `${t.id.padStart(6)}  ${state.padEnd(8)}  ${t.scopes.join(",").padEnd(22)}  ${(t.clusters.join(",") || "-").padEnd(16)}  ${time(t.expiresAt)}  ${t.name}`;
        })
        .join("\n"),
    );
  });

tokens
  .command("revoke")
  .description("revoke a token: calls with it fail, and its streams end, within seconds")
  .argument("<id>", "the token's id")
  .action(async (id: string) => {
    const token = await client().tokens().revoke(id);
    print(token, () => `revoked token ${token.id}`);
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
  // Spans still pending go out before the process ends (tracing on only).
  await shutdownTracing().catch(() => {});
  shared?.close();
}

