import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type ComputedTasks,
  type LeaseExtension,
  type LeasesExtended,
  type RefusedResult,
  LeasesExtendedSchema,
  RefusedResultSchema,
  type ResultsRecorded,
  ResultsRecordedSchema,
  RunnerService,
  type SessionRequest,
  type SessionResponse,
  SessionResponseSchema,
  type SessionStart,
  TaskLeaseSchema,
  type TaskResult,
  type TaskResults,
} from "../../gen/sluice/v1/runner_service_pb.js";
import type { RunnerStream } from "../dispatch/runner-stream.js";
import { type RecordedResults, type Refusal, type TaskResultIn, recordResults } from "../store/complete-tasks.js";
import type { Capability } from "../store/lease-tasks.js";
import { extendLeases } from "../store/leases.js";
import { type TaskPlan, addSubmissions, clusterSlugsOf, emptyPlan } from "../task-plan.js";
import type { TaskSubmission } from "../../gen/sluice/v1/task_pb.js";
import { ID_PATTERN, codeName, invalid, parseId, parseIdentifier, replaceUnstorable } from "../validation.js";
import { toConnectError } from "../interceptors/errors.js";
import { type Principal, principalKey } from "../auth/authenticator.js";
import { type ServiceDeps, requireClusters } from "./deps.js";
import { resolveTriggers } from "./triggers.js";
import type { SessionObserver } from "../observe/session-observer.js";
import { completeSpans } from "../observe/trace-spans.js";
import type { RetryScheduler } from "../maintenance/retry-scheduler.js";
import { addJobHookSubtasks } from "../hook/hook-subtasks.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_RESULTS_PER_MESSAGE = 5_000;
const MAX_LEASES_PER_EXTENSION = 5_000;
const MAX_CONCURRENCY = 10_000;
/** Tasks a runner may say it holds when it starts a session: its largest capacity. */
const MAX_HELD = 2 * MAX_CONCURRENCY;

function checkRunnerId(runnerId: string): string {
  if (!UUID.test(runnerId)) throw invalid(`runner_id must be a UUID the runner chose for itself, got ${JSON.stringify(runnerId)}`);
  return runnerId.toLowerCase();
}

const NOTHING_RECORDED: RecordedResults = { refused: [], failedJobs: [], readyClusters: [] };

/** The code a runner is told for each kind of refused result. */
const REFUSAL_CODES: Record<Refusal["kind"], Code> = {
  missing: Code.NotFound,
  "wrong-job": Code.InvalidArgument,
  "not-holder": Code.PermissionDenied,
  "not-recorded": Code.FailedPrecondition,
};

export function runnerService({
  sql,
  clusters,
  dispatcher,
  leaseTtlMs,
  attemptKeys,
  observer,
  retries,
}: ServiceDeps & { observer: SessionObserver; retries: RetryScheduler }): ServiceImpl<typeof RunnerService> {
  /**
   * Checks a runner's first message, reconciles what it holds with what the
   * database says is leased to it, and attaches its stream to the dispatcher.
   */
  async function attach(start: SessionStart, principal: Principal | null): Promise<RunnerStream> {
    const runnerId = checkRunnerId(start.runnerId);
    if (start.tasks.length === 0) throw invalid("tasks is empty: a runner must register at least one task it can execute");
    const capabilities: Capability[] = start.tasks.map((t, i) => ({ ...parseIdentifier(t.name, t.version, `tasks[${i}]`), jobHook: t.jobHook }));
    if (start.concurrency < 1 || start.concurrency > MAX_CONCURRENCY) {
      throw invalid(`concurrency must be between 1 and ${MAX_CONCURRENCY}, got ${start.concurrency}`);
    }
    if (start.prefetch > MAX_CONCURRENCY) throw invalid(`prefetch must be at most ${MAX_CONCURRENCY}, got ${start.prefetch}`);
    if (start.held.length > MAX_HELD) throw invalid(`held names ${start.held.length} tasks; a runner holds at most ${MAX_HELD}`);
    const held = start.held.map((h, i) => ({ taskId: parseId(h.taskId, `held[${i}].task_id`), lease: h.lease }));
    const slug = start.cluster === "" ? "default" : start.cluster;
    if (principal && principal.clusters.length > 0 && !principal.clusters.includes(slug)) {
      throw new ConnectError(`this runner token may take work from ${principal.clusters.join(", ")}, not from cluster "${slug}"`, Code.PermissionDenied);
    }
    const clusterId = (await requireClusters(clusters, [slug])).get(slug)!;
    const stream = dispatcher.attach({
      runnerId,
      clusterId,
      clusterSlug: slug,
      capabilities,
      capacity: start.concurrency + start.prefetch,
      held: await dispatcher.reconcile(runnerId, held),
      draining: start.draining,
      leaseTtlMs,
      counters: observer.metrics.cluster(slug),
      attemptKeys,
    });
    await observer.started(stream, start, capabilities);
    return stream;
  }

  /** Records a results message of a session; a batch refused as a whole is a refusal per result. */
  async function record(stream: RunnerStream, req: TaskResults): Promise<ResultsRecorded> {
    // A task's lines are written before its result, so that whoever sees the
    // task finished finds all of them.
    await observer.telemetry(stream, req.telemetry);
    try {
      return await recordBatch(stream, req);
    } catch (e) {
      if (!(e instanceof ConnectError) || (e.code !== Code.InvalidArgument && e.code !== Code.ResourceExhausted)) throw e;
      const refusal = (taskId: string) => create(RefusedResultSchema, { taskId, code: codeName(e.code), message: e.rawMessage });
      const refused = req.results.map((r) => refusal(r.task?.taskId ?? ""));
      for (const id of req.computed?.taskIds ?? []) refused.push(refusal(id));
      // The slots of the tasks are freed all the same: the runner forgets them.
      stream.resultsArrived([...req.results.map((r) => r.task?.taskId ?? ""), ...(req.computed?.taskIds ?? [])]);
      stream.resultsRecorded();
      return create(ResultsRecordedSchema, { refused });
    }
  }

  async function recordBatch(stream: RunnerStream, req: TaskResults): Promise<ResultsRecorded> {
    const computed = computedOf(req.computed);
    const count = req.results.length + computed.length;
    if (count > MAX_RESULTS_PER_MESSAGE) {
      throw invalid(`${count} results in one message; send at most ${MAX_RESULTS_PER_MESSAGE}`);
    }
    const seen = new Set<string>();
    for (const [i, r] of req.results.entries()) {
      if (!r.task) throw invalid(`results[${i}]: task is missing`);
      parseId(r.task.taskId, `results[${i}].task.task_id`);
      parseId(r.jobId, `results[${i}].job_id`);
      if (r.outcome.case === undefined) throw invalid(`results[${i}]: set computed, failed or released`);
      if (seen.has(r.task.taskId)) throw invalid(`results[${i}]: task ${r.task.taskId} is reported twice in one message`);
      seen.add(r.task.taskId);
    }
    for (const [i, c] of computed.entries()) {
      if (seen.has(c.taskId)) throw invalid(`computed.task_ids[${i}]: task ${c.taskId} is reported twice in one message`);
      seen.add(c.taskId);
    }

    await addJobHookSubtasks(sql, req.results);
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
        const plan = await planSubtasks(r, subtasks, known, (slug) => clusters.id(slug));
        await resolveTriggers(sql, plan.rows, `subtasks of task ${r.task!.taskId}`);
        valid.push({ ...resultIn(r), subtasks: plan });
      } catch (e) {
        rejected.set(r.task!.taskId, (e as Error).message);
      }
    }
    for (const c of computed) valid.push(c);
    // A result refused for bad subtasks keeps its slot: the runner reports
    // the task again, as failed.
    const arrived = req.results.map((r) => r.task!.taskId).filter((id) => !rejected.has(id));
    for (const c of computed) arrived.push(c.taskId);
    // The slots are free at once, so leasing more overlaps with recording these.
    stream.resultsArrived(arrived);
    let recorded: RecordedResults;
    const spans = completeSpans(req);
    try {
      recorded = valid.length > 0 ? await recordResults(sql, stream.runnerId, valid) : NOTHING_RECORDED;
      observer.recorded(stream, req, computed, recorded);
      if (recorded.nextRetryAt) retries.wakeAt(recorded.nextRetryAt);
      for (const job of recorded.failedJobs) dispatcher.cancelJob(job, `job ${job} failed`);
      // Wake this server's streams for the work these results made ready
      // (before the runner's stream may say it is idle): the NOTIFY reaches
      // this server later.
      dispatcher.wakeClusters(recorded.readyClusters);
    } finally {
      stream.resultsRecorded();
      if (spans) for (const s of spans) s.end();
    }

    const answer = create(ResultsRecordedSchema);
    if (rejected.size === 0 && recorded.refused.length === 0) return answer;
    const byTask = new Map(recorded.refused.map((o) => [o.taskId, o]));
    const refuse = (taskId: string) => {
      const reason = rejected.get(taskId);
      const o = byTask.get(taskId);
      if (reason !== undefined) {
        answer.refused.push(create(RefusedResultSchema, { taskId, code: codeName(Code.InvalidArgument), message: reason }));
      } else if (o !== undefined) {
        answer.refused.push(create(RefusedResultSchema, { taskId, code: codeName(REFUSAL_CODES[o.kind]), message: o.message }));
      }
    };
    for (const r of req.results) refuse(r.task!.taskId);
    for (const c of computed) refuse(c.taskId);
    return answer;
  }

  async function extend(stream: RunnerStream, req: LeaseExtension): Promise<LeasesExtended> {
    if (req.leases.length > MAX_LEASES_PER_EXTENSION) {
      throw invalid(`${req.leases.length} leases in one extension; send at most ${MAX_LEASES_PER_EXTENSION}`);
    }
    const leases = req.leases.map((l, i) => ({ taskId: parseId(l.taskId, `leases[${i}].task_id`), lease: l.lease }));
    if (leases.length === 0) {
      return create(LeasesExtendedSchema, { leaseExpiresAt: timestampFromDate(new Date(Date.now() + leaseTtlMs)) });
    }
    const { expiresAt, lost } = await extendLeases(sql, stream.runnerId, leases, leaseTtlMs);
    return create(LeasesExtendedSchema, {
      leaseExpiresAt: timestampFromDate(expiresAt),
      lost: lost.map((l) => create(TaskLeaseSchema, { taskId: l.taskId, lease: l.lease })),
    });
  }

  /**
   * Reads the runner's messages after its first, one after the other, and
   * answers `results` and `extend` on the stream in the order they came.
   * Resolves when the runner said it ended (the tasks still leased to it, sent
   * as it stopped and never run, are queued again) or its side of the stream
   * ended without a word (its leases stay, for its next session).
   */
  async function readMessages(stream: RunnerStream, incoming: AsyncIterator<SessionRequest>): Promise<void> {
    for (;;) {
      const next = await incoming.next();
      if (next.done) return;
      const m = next.value.message;
      observer.heard(stream);
      let answer: SessionResponse["event"];
      if (m.case === "results") answer = { case: "recorded", value: await record(stream, m.value) };
      else if (m.case === "extend") answer = { case: "extended", value: await extend(stream, m.value) };
      else if (m.case === "telemetry") {
        await observer.telemetry(stream, m.value);
        continue;
      } else if (m.case === "drain") {
        stream.drain();
        continue;
      } else if (m.case === "end") {
        stream.ending = true;
        dispatcher.detach(stream);
        await stream.settled();
        await dispatcher.reconcile(stream.runnerId);
        return;
      } else throw invalid("after its first message (start) a session carries only results, extend, drain and end");
      stream.events.push(create(SessionResponseSchema, { event: answer }));
    }
  }

  return {
    async *session(messages, ctx) {
      const incoming = messages[Symbol.asyncIterator]();
      const first = await incoming.next();
      if (first.done || first.value.message.case !== "start") {
        throw invalid("the first message of a session must be start: who the runner is and what it runs");
      }
      const stream = await attach(first.value.message.value, ctx.values.get(principalKey));
      let failure: unknown;
      const reading = readMessages(stream, incoming).then(
        () => stream.close(),
        (e) => {
          if (!ctx.signal.aborted) failure = e;
          stream.close();
        },
      );
      const detach = () => dispatcher.detach(stream);
      ctx.signal.addEventListener("abort", detach, { once: true });
      try {
        yield create(SessionResponseSchema, { event: { case: "started", value: { leaseTtlMs } } });
        // Not waiting for the reader: a failure is set before it closes the
        // events, and a stream the server closed (it is stopping) must end the
        // call even while the runner keeps its side open.
        for await (const event of stream.events) yield event;
        // The runner's end: the call ends once what it left leased is queued again.
        if (stream.ending) await reading;
      } finally {
        ctx.signal.removeEventListener("abort", detach);
        detach();
        observer.ended(stream);
      }
      if (failure !== undefined) throw toConnectError(failure);
      if (stream.failure !== undefined) throw toConnectError(stream.failure);
    },
  };
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
