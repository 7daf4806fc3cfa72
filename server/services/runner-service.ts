import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type CompleteTasksResponse,
  CompleteTasksResponseSchema,
  type ComputedTasks,
  type RefusedResult,
  RefusedResultSchema,
  RunnerService,
  TaskLeaseSchema,
  type TaskResult,
  type WorkRequest,
  type WorkResponse,
  WorkResponseSchema,
} from "../../gen/sluice/v1/runner_service_pb.js";
import type { RunnerStream } from "../dispatch/runner-stream.js";
import { type RecordedResults, type TaskResultIn, recordResults } from "../store/complete-tasks.js";
import type { Capability } from "../store/lease-tasks.js";
import { extendLeases } from "../store/leases.js";
import { type TaskPlan, addSubmissions, clusterSlugsOf, emptyPlan } from "../task-plan.js";
import type { TaskSubmission } from "../../gen/sluice/v1/task_pb.js";
import { ID_PATTERN, codeName, invalid, parseId, parseIdentifier, replaceUnstorable } from "../validation.js";
import { type ServiceDeps, requireClusters } from "./deps.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_RESULTS_PER_CALL = 5_000;
const MAX_CONCURRENCY = 10_000;

function checkRunnerId(runnerId: string): string {
  if (!UUID.test(runnerId)) throw invalid(`runner_id must be a UUID the runner chose for itself, got ${JSON.stringify(runnerId)}`);
  return runnerId.toLowerCase();
}

export function runnerService({ sql, clusters, dispatcher, leaseTtlMs }: ServiceDeps): ServiceImpl<typeof RunnerService> {
  /**
   * The runner stopped: the tasks leased to it that it never reported (sent as
   * its stream closed) are queued again now, without a failure, as if it had
   * given them back. Fenced by lease like any result: a task that ran
   * elsewhere meanwhile is left alone.
   */
  async function releaseUnreported(runnerId: string): Promise<void> {
    const left = dispatcher.depart(runnerId);
    if (left.size === 0) return;
    const released: TaskResultIn[] = [];
    for (const [taskId, t] of left) released.push({ taskId, lease: t.lease, jobId: t.jobId, released: true });
    const recorded = await recordResults(sql, released);
    dispatcher.wakeClusters(recorded.readyClusters);
  }

  /** Checks a runner's WorkRequest and attaches its stream to the dispatcher. */
  async function attach(req: WorkRequest) {
    const runnerId = checkRunnerId(req.runnerId);
    if (req.tasks.length === 0) throw invalid("tasks is empty: a runner must register at least one task it can execute");
    const capabilities: Capability[] = req.tasks.map((t, i) => parseIdentifier(t.name, t.version, `tasks[${i}]`));
    if (req.concurrency < 1 || req.concurrency > MAX_CONCURRENCY) {
      throw invalid(`concurrency must be between 1 and ${MAX_CONCURRENCY}, got ${req.concurrency}`);
    }
    if (req.prefetch > MAX_CONCURRENCY) throw invalid(`prefetch must be at most ${MAX_CONCURRENCY}, got ${req.prefetch}`);
    const slug = req.cluster === "" ? "default" : req.cluster;
    const clusterId = (await requireClusters(clusters, [slug])).get(slug)!;
    return dispatcher.attach({
      runnerId,
      clusterId,
      clusterSlug: slug,
      capabilities,
      capacity: req.concurrency + req.prefetch,
      carried: req.inFlight,
      columns: req.columns,
      leaseTtlMs,
    });
  }

  /** The events of an attached stream, first "started"; detaches it when the call ends. */
  async function* events(stream: RunnerStream, signal: AbortSignal): AsyncGenerator<WorkResponse> {
    const detach = () => dispatcher.detach(stream);
    signal.addEventListener("abort", detach, { once: true });
    try {
      yield create(WorkResponseSchema, { event: { case: "started", value: { leaseTtlMs } } });
      for await (const event of stream.events) yield event;
    } finally {
      signal.removeEventListener("abort", detach);
      detach();
    }
  }

  const impl: ServiceImpl<typeof RunnerService> = {
    async *work(req, ctx) {
      yield* events(await attach(req), ctx.signal);
    },

    async *session(messages, ctx) {
      const incoming = messages[Symbol.asyncIterator]();
      const first = await incoming.next();
      if (first.done || first.value.message.case !== "work") {
        throw invalid("the first message of a session must be work: the runner's WorkRequest");
      }
      const stream = await attach(first.value.message.value);
      const runnerId = stream.runnerId;
      // Results are recorded one message after the other, each answered on the
      // stream in the order they came. A message the server cannot take ends
      // the session with the error.
      let failure: unknown;
      void (async () => {
        for (;;) {
          const next = await incoming.next();
          if (next.done) return;
          const m = next.value.message;
          if (m.case !== "results") throw invalid("after its first message a session carries only results");
          const req = m.value;
          if (req.last) throw invalid("last is not allowed on a session: end the session instead, then send CompleteTasks with last");
          if (req.runnerId !== "" && checkRunnerId(req.runnerId) !== runnerId) {
            throw invalid(`results name runner ${req.runnerId}, but the session is runner ${runnerId}'s`);
          }
          req.runnerId = runnerId;
          let answer: CompleteTasksResponse;
          try {
            answer = create(CompleteTasksResponseSchema, await impl.completeTasks(req, ctx));
          } catch (e) {
            // A batch refused as a whole (as CompleteTasks would refuse the
            // call) is answered with a refusal per result.
            if (!(e instanceof ConnectError) || (e.code !== Code.InvalidArgument && e.code !== Code.ResourceExhausted)) throw e;
            const refusal = (taskId: string) => create(RefusedResultSchema, { taskId, code: codeName(e.code), message: e.rawMessage });
            const refused = req.results.map((r) => refusal(r.task?.taskId ?? ""));
            for (const id of req.computed?.taskIds ?? []) refused.push(refusal(id));
            answer = create(CompleteTasksResponseSchema, { refused, computedRead: true });
          }
          stream.events.push(create(WorkResponseSchema, { event: { case: "recorded", value: answer } }));
        }
      })().catch((e) => {
        if (ctx.signal.aborted) return;
        failure = e;
        stream.events.close();
      });
      // Not waiting for the reader: a failure is set before it closes the
      // events, and a stream the server closed (it is stopping) must end the
      // call even while the runner keeps its side open.
      yield* events(stream, ctx.signal);
      if (failure !== undefined) throw failure;
    },

    async completeTasks(req) {
      const runnerId = checkRunnerId(req.runnerId);
      const computed = computedOf(req.computed);
      const count = req.results.length + computed.length;
      if (count > MAX_RESULTS_PER_CALL) {
        throw invalid(`${count} results in one call; send at most ${MAX_RESULTS_PER_CALL}`);
      }
      const seen = new Set<string>();
      for (const [i, r] of req.results.entries()) {
        if (!r.task) throw invalid(`results[${i}]: task is missing`);
        parseId(r.task.taskId, `results[${i}].task.task_id`);
        parseId(r.jobId, `results[${i}].job_id`);
        if (r.outcome.case === undefined) throw invalid(`results[${i}]: set computed, failed or released`);
        if (seen.has(r.task.taskId)) throw invalid(`results[${i}]: task ${r.task.taskId} is reported twice in one call`);
        seen.add(r.task.taskId);
      }
      for (const [i, c] of computed.entries()) {
        if (seen.has(c.taskId)) throw invalid(`computed.task_ids[${i}]: task ${c.taskId} is reported twice in one call`);
        seen.add(c.taskId);
      }

      // Subtasks are validated per result: a bad subtask list refuses that
      // result (InvalidArgument) and records nothing for it, not the batch.
      const slugs = req.results.flatMap((r) => (r.outcome.case === "computed" ? clusterSlugsOf(r.outcome.value.subtasks) : []));
      const known = slugs.length === 0 ? new Map<string, number>() : await clusters.ids([...new Set(slugs)]);
      const valid: TaskResultIn[] = [];
      const rejected = new Map<string, string>();
      for (const r of req.results) {
        const subtasks = r.outcome.case === "computed" ? r.outcome.value.subtasks : [];
        if (subtasks.length === 0) {
          valid.push(resultIn(r));
          continue;
        }
        try {
          valid.push({ ...resultIn(r), subtasks: await planSubtasks(r, subtasks, known, (slug) => clusters.id(slug)) });
        } catch (e) {
          rejected.set(r.task!.taskId, (e as Error).message);
        }
      }
      for (const c of computed) valid.push(c);
      // A result refused for bad subtasks keeps its slot: the runner reports
      // the task again, as failed.
      const arrived = req.results.map((r) => r.task!.taskId).filter((id) => !rejected.has(id));
      for (const c of computed) arrived.push(c.taskId);
      const recordedAll = dispatcher.resultsArrived(runnerId, arrived);
      let recorded: RecordedResults;
      try {
        recorded = valid.length > 0 ? await recordResults(sql, valid) : { refused: [], failedJobs: [], readyClusters: [] };
        for (const job of recorded.failedJobs) dispatcher.cancelJob(job, `job ${job} failed`);
        // Wake this server's streams for the work these results made ready
        // (before the runner's stream may say it is idle): the NOTIFY reaches
        // this server later.
        dispatcher.wakeClusters(recorded.readyClusters);
      } finally {
        recordedAll();
      }

      if (req.last) await releaseUnreported(runnerId);

      if (rejected.size === 0 && recorded.refused.length === 0) return { refused: [], computedRead: true };
      const byTask = new Map(recorded.refused.map((o) => [o.taskId, o]));
      const refused: RefusedResult[] = [];
      const refuse = (taskId: string) => {
        const reason = rejected.get(taskId);
        const o = byTask.get(taskId);
        if (reason !== undefined) {
          refused.push(create(RefusedResultSchema, { taskId, code: codeName(Code.InvalidArgument), message: reason }));
        } else if (o !== undefined) {
          refused.push(create(RefusedResultSchema, { taskId, code: codeName(o.code), message: o.message }));
        }
      };
      for (const r of req.results) refuse(r.task!.taskId);
      for (const c of computed) refuse(c.taskId);
      return { refused, computedRead: true };
    },

    async extendLeases(req) {
      checkRunnerId(req.runnerId);
      const leases = req.leases.map((l, i) => ({ taskId: parseId(l.taskId, `leases[${i}].task_id`), lease: l.lease }));
      if (leases.length === 0) return { leaseExpiresAt: timestampFromDate(new Date(Date.now() + leaseTtlMs)), lost: [] };
      const { expiresAt, lost } = await extendLeases(sql, leases, leaseTtlMs);
      return {
        leaseExpiresAt: timestampFromDate(expiresAt),
        lost: lost.map((l) => create(TaskLeaseSchema, { taskId: l.taskId, lease: l.lease })),
      };
    },
  };
  return impl;
}

/** The successes a runner sent as columns, checked: lists of one length, ids that are ids. */
function computedOf(c: ComputedTasks | undefined): TaskResultIn[] {
  if (!c) return [];
  const n = c.taskIds.length;
  if (c.leases.length !== n || c.jobIds.length !== n) {
    throw invalid(
      `computed: task_ids, leases and job_ids must have one element per task, got ${n}, ${c.leases.length} and ${c.jobIds.length}`,
    );
  }
  const out: TaskResultIn[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const taskId = c.taskIds[i];
    const jobId = c.jobIds[i];
    // Tested first so that a valid id costs no message.
    if (!ID_PATTERN.test(taskId)) parseId(taskId, `computed.task_ids[${i}]`);
    if (!ID_PATTERN.test(jobId)) parseId(jobId, `computed.job_ids[${i}]`);
    out[i] = { taskId, lease: c.leases[i], jobId };
  }
  return out;
}

/** A result as the store takes it, without subtasks (see planSubtasks). */
function resultIn(r: TaskResult): TaskResultIn {
  const base = { taskId: r.task!.taskId, lease: r.task!.lease, jobId: r.jobId };
  if (r.outcome.case === "failed") {
    // Any text a task threw is kept: what PostgreSQL cannot store is replaced.
    return { ...base, failure: { message: replaceUnstorable(r.outcome.value.message), stack: replaceUnstorable(r.outcome.value.stack) } };
  }
  if (r.outcome.case === "released") return { ...base, released: true };
  return base;
}

/** Validates the subtasks a task submitted and plans their rows; throws InvalidArgument. */
async function planSubtasks(
  r: TaskResult,
  subtasks: readonly TaskSubmission[],
  known: ReadonlyMap<string, number>,
  lookup: (slug: string) => Promise<number | undefined>,
): Promise<TaskPlan> {
  const taskId = r.task!.taskId;
  const clusterIds = new Map(known);
  for (const slug of clusterSlugsOf(subtasks)) {
    if (!clusterIds.has(slug)) {
      const id = await lookup(slug);
      if (id === undefined) throw invalid(`subtasks of task ${taskId}: cluster "${slug}" does not exist; create it first`);
      clusterIds.set(slug, id);
    }
  }
  // Subtasks without a cluster inherit the parent's, filled in when the
  // completion is recorded.
  const plan = emptyPlan();
  addSubmissions(plan, subtasks, {
    where: `subtasks of task ${taskId}`,
    jobId: r.jobId,
    parentId: taskId,
    defaultClusterId: null,
    clusterIds,
  });
  return plan;
}
