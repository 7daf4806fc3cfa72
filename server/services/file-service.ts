import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  FileService,
  type FileTaskStatus,
  FileTaskStatusSchema,
  FileStepStatusSchema,
  type PathObject,
  PathObjectSchema,
  type PathSummary,
  PathSummarySchema,
  type SubmitFileWorkflowRequest,
} from "../../gen/sluice/v1/file_service_pb.js";
import { TaskIdentifierSchema, type TaskSubmission, TaskSubmissionSchema } from "../../gen/sluice/v1/task_pb.js";
import { taskStateToProto } from "../../runner/wire/states.js";
import { SITE_PATTERN, siteBoundName, splitSiteBound } from "../../runner/wire/sites.js";
import { type Principal, principalKey } from "../auth/authenticator.js";
import { compileGlob } from "../sources/glob.js";
import { type StorageClients } from "../sources/locations.js";
import { listObjects } from "../sources/list-objects.js";
import { fileTasksOfJob, reportedPaths } from "../store/file-reads.js";
import { LIST_CHANGED, type WorkflowInput, submitFileWorkflow } from "../store/file-workflows.js";
import { readyClusters } from "../store/insert-tasks.js";
import { DuplicatePath, appendPaths, createPathList, dropStagedList, stagedListTotal } from "../store/path-lists.js";
import { getJob } from "../store/read-jobs.js";
import { getLocation } from "../store/storage-locations.js";
import {
  type FileTaskRow,
  type PathStateName,
  fileTaskFor,
  reportPathStates,
  taskExists,
  taskInputPage,
  taskInputTotal,
} from "../store/task-paths.js";
import { addSubmissions, emptyPlan } from "../task-plan.js";
import { MAX_PATHS_PER_CALL, checkPath, pageSize, pathIn, pathOut, pathsIn, stateName, token } from "./file-paths.js";
import { MAX_TASKS_PER_SUBMISSION, checkName, checkText, failedPrecondition, invalid, notFound, parseId } from "../validation.js";
import { jobToProto } from "./convert.js";
import { type ServiceDeps, requireClusters } from "./deps.js";
import { resolveTriggers } from "./triggers.js";

const DEFAULT_CHUNK_SIZE = 10_000;
const MAX_CHUNK_SIZE = 100_000;
const DIGITS = /^\d{1,18}$/;
const BAD_TOKEN = "page_token is not one this server gave: pass next_page_token of the previous page unchanged";

/** A page's start as the input pages of task `f` take it (a position for a first step, a path for later ones). */
function inputAfter(f: FileTaskRow, after: string | null): string | null {
  if (after !== null && f.list_id !== null && !DIGITS.test(after)) throw invalid(BAD_TOKEN);
  return after;
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface FileServiceDeps extends ServiceDeps {
  storage: StorageClients;
}

export function fileService({ sql, reads, clusters, dispatcher, leaseTtlMs, storage }: FileServiceDeps): ServiceImpl<typeof FileService> {
  /**
   * The file task a runner names, checked: it exists, is a file task, the
   * caller's token may take work from its cluster, and the runner holds it
   * under the lease it names.
   */
  async function heldTask(taskId: string, lease: number, runnerId: string, ctx: HandlerContext): Promise<FileTaskRow> {
    parseId(taskId, "task_id");
    if (!UUID.test(runnerId)) throw invalid(`runner_id must be the runner's UUID, as in its session, got ${JSON.stringify(runnerId)}`);
    const f = await fileTaskFor(sql, taskId, lease, runnerId.toLowerCase());
    if (!f) {
      if (await taskExists(sql, taskId)) throw failedPrecondition(`task ${taskId} is not a file task: only tasks of file workflows have paths`);
      throw notFound(`task ${taskId} does not exist`);
    }
    await checkCluster(f, ctx.values.get(principalKey));
    if (!f.held) throw notHeld(taskId, lease, runnerId);
    return f;
  }

  async function checkCluster(f: FileTaskRow, principal: Principal | null): Promise<void> {
    if (!principal || principal.clusters.length === 0) return;
    const slug = await clusters.slug(f.cluster_id);
    if (!principal.clusters.includes(slug)) {
      throw new ConnectError(`this runner token may take work from ${principal.clusters.join(", ")}, not from cluster "${slug}"`, Code.PermissionDenied);
    }
  }

  /** The input paths of a submit, written into a staged list when they come from a listing. */
  async function inputOf(req: SubmitFileWorkflowRequest): Promise<{ input: WorkflowInput; total: bigint; staged: string | null }> {
    const p = req.paths;
    switch (p.case) {
      case "inline": {
        const paths = pathsIn(p.value.paths, "inline.paths");
        return { input: { paths }, total: BigInt(paths.length), staged: null };
      }
      case "stagedListId": {
        const listId = parseId(p.value, "staged_list_id");
        const total = await stagedListTotal(sql, listId);
        if (total === null) throw notFound(`path list ${listId} does not exist or a job took it already: stage the paths again with StagePaths`);
        return { input: { listId, total }, total, staged: null };
      }
      case "listing": {
        const l = p.value;
        const locationId = parseId(l.locationId, "listing.location_id");
        checkText(l.prefix, "listing.prefix");
        const matches = l.glob === "" ? () => true : compileGlob(l.glob, "listing.glob");
        const location = await getLocation(sql, locationId);
        if (!location) throw notFound(`listing.location_id ${locationId} is not a registered storage location; register it first (sluice storage register)`);
        const listId = await createPathList(sql);
        try {
          let total = 0n;
          for await (const page of listObjects(location, l.prefix, storage, MAX_PATHS_PER_CALL)) {
            const paths = page.filter((o) => matches(o.key)).map((o) => ({ path: o.path, size: String(o.size), message: null, extra: null }));
            if (paths.length > 0) total = (await appendPaths(sql, listId, paths)) ?? total;
          }
          return { input: { listId, total }, total, staged: listId };
        } catch (e) {
          await dropStagedList(sql, listId);
          throw e;
        }
      }
      case "event": {
        const e = p.value;
        if (e.key === "") throw invalid("event.key is missing: the event names the object whose path the workflow gets");
        const location = e.location?.id ? await getLocation(sql, parseId(e.location.id, "event.location.id")) : null;
        if (e.location?.id && !location) throw notFound(`event.location.id ${e.location.id} is not a registered storage location`);
        const path = location?.type === "fs" ? `${location.location.replace(/\/+$/, "")}/${e.key}` : e.key;
        return { input: { paths: [pathIn(create(PathObjectSchema, { path }), "event")] }, total: 1n, staged: null };
      }
      default:
        throw invalid("paths is missing: give inline paths, a staged_list_id, a listing of a storage location or an event");
    }
  }

  return {
    async submitFileWorkflow(req) {
      checkName(req.name, "job name");
      if (req.tasks.length === 0) throw invalid("tasks is empty: a file workflow needs at least one task");
      req.tasks.forEach((t, i) => {
        if (t.dependsOn.length > 0) throw invalid(`tasks[${i}]: depends_on must be empty; each task of a file workflow depends on the one before it`);
      });
      const chunkSize = req.chunkSize === 0 ? DEFAULT_CHUNK_SIZE : req.chunkSize;
      if (chunkSize > MAX_CHUNK_SIZE) throw invalid(`chunk_size is ${chunkSize}; use 1 to ${MAX_CHUNK_SIZE}`);
      if (req.site !== "" && !SITE_PATTERN.test(req.site)) throw invalid(`site ${JSON.stringify(req.site)} is invalid: use 1 to 100 letters, digits, "_" or "-"`);
      const cluster = req.cluster === "" ? "default" : req.cluster;
      const slugs = new Set([cluster, ...req.tasks.map((t) => t.cluster).filter((c) => c !== "")]);
      const clusterIds = await requireClusters(clusters, [...slugs]);
      // The tasks are checked once, before any input is read or listed.
      addSubmissions(emptyPlan(), req.tasks, { where: "tasks", jobId: null, parentId: null, defaultClusterId: clusterIds.get(cluster)!, clusterIds });

      const { input, total, staged } = await inputOf(req);
      try {
        const chunks = total === 0n ? 1 : Number((total + BigInt(chunkSize) - 1n) / BigInt(chunkSize));
        const count = chunks * req.tasks.length;
        if (count > MAX_TASKS_PER_SUBMISSION) {
          throw invalid(`${total} paths in chunks of ${chunkSize} through ${req.tasks.length} tasks make ${count} tasks; the limit is ${MAX_TASKS_PER_SUBMISSION}: use larger chunks`);
        }
        const submissions: TaskSubmission[] = [];
        // Tasks bound to a site go only to runners at that site (runner/wire/sites.ts).
        const steps = req.site === "" ? req.tasks : req.tasks.map((t) => create(TaskSubmissionSchema, {
          ...t,
          identifier: create(TaskIdentifierSchema, { name: siteBoundName(t.identifier!.name, req.site), version: t.identifier!.version }),
          display: t.display || t.identifier!.name,
        }));
        for (let c = 0; c < chunks; c++) {
          steps.forEach((t, s) => {
            submissions.push(create(TaskSubmissionSchema, { ...t, dependsOn: s === 0 ? [] : [submissions.length - 1] }));
          });
        }
        const plan = emptyPlan();
        addSubmissions(plan, submissions, { where: "tasks", jobId: null, parentId: null, defaultClusterId: clusterIds.get(cluster)!, clusterIds });
        await resolveTriggers(sql, plan.rows, "tasks");
        const job = { name: req.name, clusterId: clusterIds.get(cluster)!, plan, idempotencyKey: null };
        let row: Awaited<ReturnType<typeof submitFileWorkflow>>;
        try {
          row = await submitFileWorkflow(sql, { job, steps: req.tasks.length, chunkSize, chunks, input, site: req.site || null }, leaseTtlMs);
        } catch (e) {
          if (e instanceof DuplicatePath) throw invalid(`inline.paths: ${e.message}`);
          throw e;
        }
        if (row === LIST_CHANGED) throw failedPrecondition("the staged path list changed or was taken by another job while this one was submitted; submit again");
        dispatcher.workReady(readyClusters(plan));
        const zero = { queued: plan.rows.length, running: 0, computed: 0, failed: 0, cancelled: 0 };
        return { job: jobToProto(row, zero, cluster), inputTotal: total, chunks };
      } catch (e) {
        if (staged !== null) await dropStagedList(sql, staged);
        throw e;
      }
    },

    async stagePaths(req) {
      const paths = pathsIn(req.paths, "paths");
      try {
        if (req.listId === "") {
          return await sql.begin(async (tx) => {
            const listId = await createPathList(tx);
            const total = paths.length === 0 ? 0n : ((await appendPaths(tx, listId, paths)) ?? 0n);
            return { listId, total };
          });
        }
        const listId = parseId(req.listId, "list_id");
        const total = paths.length === 0 ? await stagedListTotal(sql, listId) : await appendPaths(sql, listId, paths);
        if (total === null) throw notFound(`path list ${listId} does not exist or a job took it already; start a new one with an empty list_id`);
        return { listId, total };
      } catch (e) {
        if (e instanceof DuplicatePath) throw invalid(`paths: ${e.message}`);
        throw e;
      }
    },

    async listTaskPaths(req, ctx) {
      const limit = pageSize(req.pageSize);
      const f = await heldTask(req.taskId, req.lease, req.runnerId, ctx);
      const after = req.pageToken === "" ? null : token.decode(req.pageToken, (v): v is string => typeof v === "string");
      const rows = await taskInputPage(sql, f, { after: inputAfter(f, after), limit, pendingOnly: !req.includeReported });
      return {
        paths: rows.map((r) => pathOut(r)),
        nextPageToken: rows.length === limit ? token.encode(rows[rows.length - 1].key) : "",
        // Counted for the first page only: a later step's total is a count.
        inputTotal: after === null ? await taskInputTotal(sql, f) : 0n,
        step: f.step,
        chunk: f.chunk,
        site: f.site ?? "",
      };
    },

    async reportPathStates(req, ctx) {
      const n = req.paths.length;
      if (n > MAX_PATHS_PER_CALL) throw invalid(`${n} paths in one report; send at most ${MAX_PATHS_PER_CALL}`);
      if (req.states.length !== n || (req.messages.length !== 0 && req.messages.length !== n)) {
        throw invalid(`paths, states and messages must have one element per path (messages may be empty), got ${n}, ${req.states.length} and ${req.messages.length}`);
      }
      const seen = new Set<string>();
      const states: PathStateName[] = new Array(n);
      const messages: (string | null)[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const path = checkPath(req.paths[i], `paths[${i}]`);
        if (seen.has(path)) throw invalid(`paths[${i}]: ${JSON.stringify(path)} is reported twice in one report; report each path once`);
        seen.add(path);
        states[i] = stateName(req.states[i], `states[${i}]`);
        const m = req.messages[i] ?? "";
        if (m !== "") checkText(m, `messages[${i}]`);
        messages[i] = m === "" ? null : m;
      }
      const principal = ctx.values.get(principalKey);
      // The statement checks the lease itself: the task is read first only
      // for a token limited to some clusters, or to say why it was not held.
      if (n === 0 || (principal && principal.clusters.length > 0)) await heldTask(req.taskId, req.lease, req.runnerId, ctx);
      if (n === 0) return { recorded: 0 };
      parseId(req.taskId, "task_id");
      if (!UUID.test(req.runnerId)) throw invalid(`runner_id must be the runner's UUID, as in its session, got ${JSON.stringify(req.runnerId)}`);
      const out = await reportPathStates(sql, req.taskId, req.lease, req.runnerId.toLowerCase(), req.paths, states, messages);
      if (out.kind === "not-held") {
        await heldTask(req.taskId, req.lease, req.runnerId, ctx);
        throw notHeld(req.taskId, req.lease, req.runnerId);
      }
      if (out.kind === "unknown-path") {
        throw invalid(`path ${JSON.stringify(out.path)} is not one of the input paths of task ${req.taskId}: report states only for paths the task was given`);
      }
      return { recorded: out.recorded };
    },

    async getFileJob(req) {
      const jobId = parseId(req.jobId, "job_id");
      const job = await getJob(reads, jobId);
      if (!job) throw notFound(`job ${jobId} does not exist`);
      const rows = await fileTasksOfJob(reads, jobId);
      const byId = new Map(rows.map((r) => [r.task_id, r]));
      const tasks: FileTaskStatus[] = rows.map((r) => {
        const source = r.source_task_id === null ? undefined : byId.get(r.source_task_id);
        const inputTotal =
          r.list_id !== null
            ? BigInt(r.last_ord!) - BigInt(r.first_ord!) + 1n
            : BigInt((source?.counts?.processed ?? 0) + (source?.counts?.skipped ?? 0));
        return create(FileTaskStatusSchema, {
          taskId: r.task_id,
          task: splitSiteBound(r.name).name,
          step: r.step,
          chunk: r.chunk,
          inputTotal,
          summary: summaryOf(r.counts),
          started: r.started_at ? timestampFromDate(r.started_at) : undefined,
          state: taskStateToProto[r.state as keyof typeof taskStateToProto],
        });
      });
      const steps = new Map<number, ReturnType<typeof create<typeof FileStepStatusSchema>>>();
      for (const t of tasks) {
        let s = steps.get(t.step);
        if (!s) steps.set(t.step, (s = create(FileStepStatusSchema, { task: t.task, step: t.step, summary: {} })));
        s.inputTotal += t.inputTotal;
        addSummary(s.summary!, t.summary!);
        if (t.started && (!s.started || t.started.seconds < s.started.seconds)) s.started = t.started;
      }
      return {
        job: jobToProto(job, job, await clusters.slug(job.cluster_id)),
        tasks,
        steps: [...steps.values()],
        site: rows[0]?.site ?? "",
      };
    },

    async listFilePaths(req) {
      const jobId = parseId(req.jobId, "job_id");
      const limit = pageSize(req.pageSize);
      const states = req.states.map((s, i) => stateName(s, `states[${i}]`));
      const rows = await fileTasksOfJob(reads, jobId);
      if (rows.length === 0) {
        if (!(await getJob(reads, jobId))) throw notFound(`job ${jobId} does not exist`);
        return { paths: [], nextPageToken: "" };
      }
      const tasks = req.task === "" ? rows : rows.filter((r) => r.task_id === req.task || splitSiteBound(r.name).name === req.task || String(r.step) === req.task);
      if (tasks.length === 0) {
        throw notFound(`job ${jobId} has no file task ${JSON.stringify(req.task)}: name a task by id, by name (${[...new Set(rows.map((r) => splitSiteBound(r.name).name))].join(", ")}) or by step number`);
      }
      if (!req.input) {
        const after =
          req.pageToken === ""
            ? null
            : token.decode(
                req.pageToken,
                (v): v is { taskId: string; path: string } =>
                  typeof v === "object" && v !== null && DIGITS.test(String((v as { taskId?: unknown }).taskId)) && typeof (v as { path?: unknown }).path === "string",
              );
        const page = await reportedPaths(reads, tasks.map((t) => t.task_id).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1)), states, after, limit);
        const last = page[page.length - 1];
        return {
          paths: page.map((r) => pathOut(r, r.task_id)),
          nextPageToken: page.length === limit ? token.encode({ taskId: last.task_id, path: last.path }) : "",
        };
      }
      // Input paths, task after task.
      let at = req.pageToken === "" ? { task: 0, after: null as string | null } : token.decode(
              req.pageToken,
              (v): v is { task: number; after: string | null } =>
                typeof v === "object" && v !== null && Number.isInteger((v as { task?: unknown }).task) && (v as { task: number }).task >= 0 &&
                ((v as { after?: unknown }).after === null || typeof (v as { after?: unknown }).after === "string"),
            );
      const out: PathObject[] = [];
      while (at.task < tasks.length && out.length < limit) {
        const t = tasks[at.task];
        const want = limit - out.length;
        const page = await taskInputPage(reads, t, { after: inputAfter(t, at.after), limit: want, pendingOnly: false });
        for (const r of page) out.push(pathOut({ ...r, state: null }, t.task_id));
        // A full page may have more behind it; a short one ends the task.
        at = page.length === want ? { task: at.task, after: page[page.length - 1].key } : { task: at.task + 1, after: null };
      }
      return { paths: out, nextPageToken: at.task < tasks.length ? token.encode(at) : "" };
    },
  };
}

function notHeld(taskId: string, lease: number, runnerId: string): ConnectError {
  return new ConnectError(
    `task ${taskId} is not running under lease ${lease} on runner ${runnerId}: its lease expired, was cancelled or the task finished; stop working on it`,
    Code.PermissionDenied,
  );
}

function summaryOf(counts: Partial<Record<PathStateName, number>> | null): PathSummary {
  const c = counts ?? {};
  return create(PathSummarySchema, {
    processed: BigInt(c.processed ?? 0),
    skipped: BigInt(c.skipped ?? 0),
    aborted: BigInt(c.aborted ?? 0),
    failures: BigInt(c.failures ?? 0),
    inprogress: BigInt(c.inprogress ?? 0),
  });
}

function addSummary(to: PathSummary, from: PathSummary): void {
  to.processed += from.processed;
  to.skipped += from.skipped;
  to.aborted += from.aborted;
  to.failures += from.failures;
  to.inprogress += from.inprogress;
}
