import { create } from "@bufbuild/protobuf";
import { ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Job } from "../../gen/sluice/v1/job_pb.js";
import {
  JobService,
  type SubmitJobRequest,
  SubmitJobRequestSchema,
  type SubmitJobResult,
  SubmitJobResultSchema,
  type SubmitJobsRequest,
  SubmitJobsResponseSchema,
} from "../../gen/sluice/v1/job_service_pb.js";
import { cancelJob } from "../store/cancel-job.js";
import { countJobs } from "../store/count-jobs.js";
import { getJob, getJobTasks, jobsByIdempotencyKey, listJobs, type JobStateName } from "../store/read-jobs.js";
import { retryJob } from "../store/retry-job.js";
import { scheduleJob } from "../store/schedules.js";
import { readyClusters } from "../store/insert-tasks.js";
import { KEY_USED, type NewJob, submitJobs } from "../store/submit-job.js";
import { type TaskRow, addSubmissions, emptyPlan } from "../task-plan.js";
import { submitSpans } from "../observe/trace-spans.js";
import type { PlacedTask } from "../dispatch/dispatcher.js";
import { EventQueue } from "../dispatch/event-queue.js";
import { checkStorableText } from "../interceptors/storable-text.js";
import { checkName, checkText, codeName, failedPrecondition, invalid, notFound, parseId } from "../validation.js";
import { jobStateFromProto } from "../../runner/wire/states.js";
import { jobToProto, taskToProto } from "./convert.js";
import { type ServiceDeps, missingCluster, requireClusters } from "./deps.js";
import { resolveTriggers } from "./triggers.js";

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;
const MAX_JOBS_PER_CALL = 1000;
/** Messages of a submit stream read ahead of the one being written. */
const MAX_WAITING_MESSAGES = 16;

/** Why a batch of jobs is refused as a whole, or null. */
function batchRefusal(req: SubmitJobsRequest, unit: "call" | "message"): ConnectError | null {
  if (req.jobs.length === 0) return invalid("jobs is empty; submit at least one job");
  if (req.jobs.length > MAX_JOBS_PER_CALL) return invalid(`${req.jobs.length} jobs in one ${unit}; send at most ${MAX_JOBS_PER_CALL}`);
  return null;
}

/** Consecutive batches grouped so that no group has more than MAX_JOBS_PER_CALL jobs. */
function groups(batches: readonly SubmitJobsRequest[]): SubmitJobsRequest[][] {
  const out: SubmitJobsRequest[][] = [];
  let jobs = Infinity;
  for (const b of batches) {
    if (jobs + b.jobs.length > MAX_JOBS_PER_CALL) {
      out.push([]);
      jobs = 0;
    }
    out[out.length - 1].push(b);
    jobs += b.jobs.length;
  }
  return out;
}

const NO_TASKS = Object.freeze({ queued: 0, running: 0, computed: 0, failed: 0, cancelled: 0 });

/** Every cluster slug the jobs name (their own, or "default", and their tasks'), each once. */
function clusterSlugsOfJobs(reqs: readonly SubmitJobRequest[]): string[] {
  const slugs = new Set<string>();
  for (const r of reqs) {
    slugs.add(r.cluster === "" ? "default" : r.cluster);
    for (const t of r.tasks) if (t.cluster !== "") slugs.add(t.cluster);
  }
  return [...slugs];
}

/** A validated job: inserted at once, or scheduled when it starts later. */
interface PlannedJob extends NewJob {
  cluster: string;
  startAt: Date | null;
  idempotencyKey: string | null;
}

const MAX_KEY_LENGTH = 200;

/** An idempotency key as submitted: empty for none. */
function checkKey(key: string): string | null {
  if (key === "") return null;
  if (key.length > MAX_KEY_LENGTH || key.includes("\0")) {
    throw invalid(`idempotency_key must be 1 to ${MAX_KEY_LENGTH} characters without NUL, such as a UUID; got ${key.length} characters`);
  }
  return key;
}

export function jobService({ sql, reads, clusters, dispatcher, leaseTtlMs, clock }: ServiceDeps): ServiceImpl<typeof JobService> {
  async function readJob(id: string) {
    const job = await getJob(sql, id);
    if (!job) throw notFound(`job ${id} does not exist`);
    return jobToProto(job, job, await clusters.slug(job.cluster_id));
  }

  /** Validates a job as submitted; throws InvalidArgument or NotFound saying what to fix. */
  async function planJob(req: SubmitJobRequest): Promise<PlannedJob> {
    const job = planJobWith(req, await clusters.ids(clusterSlugsOfJobs([req])));
    await resolveTriggers(sql, job.plan.rows, "tasks");
    return job;
  }

  /**
   * `planJob` with the ids of the clusters the job names already looked up
   * (`ids` holds those that exist): a batch of submits looks them up once.
   */
  function planJobWith(req: SubmitJobRequest, ids: ReadonlyMap<string, number>): PlannedJob {
    checkName(req.name, "job name");
    // Here rather than for the whole call: one job of a batch is refused alone.
    checkStorableText(SubmitJobRequestSchema, req);
    const cluster = req.cluster === "" ? "default" : req.cluster;
    if (req.tasks.length === 0) throw invalid("a job needs at least one root task in tasks");
    const clusterId = ids.get(cluster);
    if (clusterId === undefined) throw missingCluster(cluster);
    for (const t of req.tasks) if (t.cluster !== "" && !ids.has(t.cluster)) throw missingCluster(t.cluster);
    const plan = emptyPlan();
    addSubmissions(plan, req.tasks, {
      where: "tasks",
      jobId: null,
      parentId: null,
      defaultClusterId: clusterId,
      clusterIds: ids,
    });
    // The plan holds all that is left to do with the tasks. Dropping the
    // decoded submissions lets the collector take them while the insert runs:
    // a job of thousands of tasks kept them alive into the old generation,
    // whose size between collections grows with what is alive.
    req.tasks = [];
    const startAt = req.startAt ? timestampDate(req.startAt) : null;
    if (startAt && Number.isNaN(startAt.getTime())) throw invalid("start_at is not a valid time");
    return {
      name: req.name,
      cluster,
      clusterId,
      plan,
      startAt: startAt && startAt.getTime() > clock.now() ? startAt : null,
      idempotencyKey: checkKey(req.idempotencyKey),
    };
  }

  /** The jobs earlier submits with these keys created (a key whose job is gone is absent). */
  async function jobsOfKeys(keys: readonly string[]) {
    const rows = await jobsByIdempotencyKey(sql, keys);
    const out = new Map<string, Job>();
    for (const [key, row] of rows) out.set(key, jobToProto(row, row, await clusters.slug(row.cluster_id)));
    return out;
  }

  /** Keeps a job with a start time in the future scheduled until then. */
  async function schedule(job: PlannedJob): Promise<Job> {
    for (;;) {
      const row = await scheduleJob(sql, job.name, job.clusterId, job.plan, job.startAt!, job.idempotencyKey);
      if (row !== KEY_USED) return jobToProto(row, NO_TASKS, job.cluster);
      // Its key was used: the job of that submit is the answer (unless it
      // was deleted since, or its insert rolled back: then this one goes in).
      const existing = (await jobsOfKeys([job.idempotencyKey!])).get(job.idempotencyKey!);
      if (existing) return existing;
    }
  }

  /**
   * Inserts jobs to run now, in one statement; hands ready tasks straight to
   * runners of this server that wait for work, and wakes the runners of the
   * clusters whose tasks were queued. A job whose idempotency key was used
   * already is answered with the job that key created, and not inserted.
   */
  async function submitPlanned(jobs: readonly PlannedJob[]): Promise<Job[]> {
    // Positions of the plans' rows, which the insert renumbers in place.
    const ords = jobs.map((j) => j.plan.rows.map((r) => r.ord));
    const handOffs = dispatcher.reserveHandOffs(jobs.length === 1 ? jobs[0].plan.rows : jobs.flatMap((j) => j.plan.rows));
    const spans = submitSpans(jobs);
    let rows: Awaited<ReturnType<typeof submitJobs>>;
    try {
      rows = await submitJobs(sql, jobs, leaseTtlMs);
    } catch (e) {
      dispatcher.cancelHandOffs(handOffs);
      for (const s of spans) s.end(e as Error);
      throw e;
    }
    for (const s of spans) s.end();
    if (rows === KEY_USED) {
      dispatcher.cancelHandOffs(handOffs);
      jobs.forEach((j, i) => j.plan.rows.forEach((r, k) => (r.ord = ords[i][k])));
      const existing = await jobsOfKeys(jobs.flatMap((j) => (j.idempotencyKey ? [j.idempotencyKey] : [])));
      const rest = jobs.filter((j) => !j.idempotencyKey || !existing.has(j.idempotencyKey));
      const created = rest.length > 0 ? await submitPlanned(rest) : [];
      let k = 0;
      return jobs.map((j) => (j.idempotencyKey && existing.has(j.idempotencyKey) ? existing.get(j.idempotencyKey)! : created[k++]));
    }
    const handedPerJob = rows.map(() => 0);
    if (handOffs.length > 0) {
      const placed = new Map<TaskRow, PlacedTask>();
      rows.forEach((row, i) => {
        if (row.handed === null) return;
        const ids = row.handed.split(",");
        handedPerJob[i] = ids.length;
        let k = 0;
        for (const r of jobs[i].plan.rows) if (r.leaseTo !== undefined) placed.set(r, { id: ids[k++], jobId: row.id });
      });
      dispatcher.handOver(handOffs, placed);
    }
    dispatcher.workReady([...new Set(jobs.flatMap((j) => readyClusters(j.plan)))]);
    return rows.map((row, i) => {
      const running = handedPerJob[i];
      // A job with a task handed over has started, as a read of it would say.
      if (running > 0) {
        row.state = "started";
        row.started_at = row.created_at;
      }
      const counts = { queued: jobs[i].plan.rows.length - running, running, computed: 0, failed: 0, cancelled: 0 };
      return jobToProto(row, counts, jobs[i].cluster);
    });
  }

  /**
   * Submits jobs as one SubmitJobs call does: each is validated on its own (a
   * refusal is its result, in the request's order), those to start later are
   * scheduled, and the rest are written in one statement.
   */
  async function submitBatch(reqs: readonly SubmitJobRequest[]): Promise<SubmitJobResult[]> {
    const results: SubmitJobResult[] = new Array(reqs.length);
    const now: { index: number; job: PlannedJob }[] = [];
    const ids = await clusters.ids(clusterSlugsOfJobs(reqs));
    for (let index = 0; index < reqs.length; index++) {
      const r = reqs[index];
      try {
        const job = planJobWith(r, ids);
        // Most jobs have no trigger: no await for them (a batch plans a thousand).
        if (job.plan.rows.some((row) => row.trigger !== null)) await resolveTriggers(sql, job.plan.rows, "tasks");
        if (job.startAt) results[index] = create(SubmitJobResultSchema, { result: { case: "job", value: await schedule(job) } });
        else now.push({ index, job });
      } catch (e) {
        if (!(e instanceof ConnectError)) throw e;
        results[index] = create(SubmitJobResultSchema, {
          result: { case: "refused", value: { code: codeName(e.code), message: e.rawMessage } },
        });
      }
    }
    // A key named twice in one batch: the later submits get the first's job.
    const firstWithKey = new Map<string, number>();
    const repeats: { index: number; first: number }[] = [];
    const unique = now.filter((n) => {
      const key = n.job.idempotencyKey;
      if (key === null) return true;
      const first = firstWithKey.get(key);
      if (first === undefined) {
        firstWithKey.set(key, n.index);
        return true;
      }
      repeats.push({ index: n.index, first });
      return false;
    });
    if (unique.length > 0) {
      const created = await submitPlanned(unique.map((n) => n.job));
      unique.forEach((n, i) => (results[n.index] = create(SubmitJobResultSchema, { result: { case: "job", value: created[i] } })));
    }
    for (const r of repeats) results[r.index] = results[r.first];
    return results;
  }

  return {
    async submitJob(req) {
      const job = await planJob(req);
      if (job.startAt) return { job: await schedule(job) };
      const [created] = await submitPlanned([job]);
      return { job: created };
    },

    async submitJobs(req) {
      const refusal = batchRefusal(req, "call");
      if (refusal) throw refusal;
      return { results: await submitBatch(req.jobs) };
    },

    async *submitStream(requests, ctx) {
      // Messages are read as they come and written in order: those that
      // arrived while earlier ones were being written go together, in one
      // statement (up to MAX_JOBS_PER_CALL jobs each), and each is answered
      // on its own.
      const inbox = new EventQueue<SubmitJobsRequest>();
      let failure: unknown;
      // At most MAX_WAITING_MESSAGES read ahead: then the reader waits for the
      // writer, and HTTP/2 flow control holds the client.
      const reader: { room: (() => void) | null } = { room: null };
      void (async () => {
        for await (const req of requests) {
          inbox.push(req);
          if (inbox.size >= MAX_WAITING_MESSAGES) await new Promise<void>((resolve) => (reader.room = resolve));
        }
      })()
        .catch((e) => {
          if (!ctx.signal.aborted) failure = e;
        })
        .finally(() => inbox.close());
      for (;;) {
        const next = await inbox.next();
        if (next.done) break;
        const arrived = [next.value, ...inbox.drain()];
        reader.room?.();
        reader.room = null;
        const bad = arrived.findIndex((r) => batchRefusal(r, "message") !== null);
        for (const group of groups(bad === -1 ? arrived : arrived.slice(0, bad))) {
          const results = await submitBatch(group.flatMap((r) => r.jobs));
          let k = 0;
          for (const r of group) {
            yield create(SubmitJobsResponseSchema, { results: results.slice(k, (k += r.jobs.length)) });
          }
        }
        if (bad !== -1) throw batchRefusal(arrived[bad], "message")!;
      }
      if (failure !== undefined) throw failure;
    },

    async getJob(req) {
      const id = parseId(req.id, "job id");
      const job = await readJob(id);
      const tasks = await getJobTasks(reads, id);
      const slugs = new Map<number, string>();
      for (const t of tasks) if (!slugs.has(t.cluster_id)) slugs.set(t.cluster_id, await clusters.slug(t.cluster_id));
      return { job, tasks: tasks.map((t) => taskToProto(t, slugs.get(t.cluster_id)!)) };
    },

    async listJobs(req) {
      const states = req.states.map((s) => {
        const name = jobStateFromProto.get(s);
        if (!name) throw invalid(`states: ${s} is not a job state; use SCHEDULED, QUEUED, STARTED, COMPLETED, FAILED or CANCELLED`);
        return name;
      });
      const clusterId = req.cluster === "" ? null : (await requireClusters(clusters, [req.cluster])).get(req.cluster)!;
      if (req.pageSize > MAX_PAGE_SIZE) throw invalid(`page_size is ${req.pageSize}; the limit is ${MAX_PAGE_SIZE}`);
      const limit = req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize;
      const beforeId = req.pageToken === "" ? null : parseId(req.pageToken, "page_token");
      const rows = await listJobs(reads, {
        states: [...new Set<JobStateName>(states)],
        clusterId,
        name: req.name,
        createdAfter: req.createdAfter ? timestampDate(req.createdAfter) : null,
        createdBefore: req.createdBefore ? timestampDate(req.createdBefore) : null,
        beforeId,
        limit,
      });
      const jobs = [];
      for (const r of rows) jobs.push(jobToProto(r, r, await clusters.slug(r.cluster_id)));
      return { jobs, nextPageToken: rows.length === limit ? rows[rows.length - 1].id : "" };
    },

    async cancelJob(req) {
      const id = parseId(req.id, "job id");
      const outcome = await cancelJob(sql, id);
      if (outcome.kind === "missing") throw notFound(`job ${id} does not exist`);
      if (outcome.kind === "finished") throw failedPrecondition(`job ${id} is already ${outcome.state}; only scheduled, queued or started jobs can be cancelled`);
      return { job: await readJob(id) };
    },

    async retryJob(req) {
      const id = parseId(req.id, "job id");
      const outcome = await retryJob(sql, id);
      if (outcome.kind === "missing") throw notFound(`job ${id} does not exist`);
      if (outcome.kind === "not-failed") throw failedPrecondition(`job ${id} is ${outcome.state}; only failed or cancelled jobs can be retried`);
      if (outcome.kind === "never-started") {
        throw failedPrecondition(`job ${id} was cancelled before its scheduled start and has no tasks to retry; submit it again`);
      }
      return { job: await readJob(id) };
    },

    async countJobs(req) {
      checkText(req.name, "name");
      const clusterId = req.cluster === "" ? null : (await requireClusters(clusters, [req.cluster])).get(req.cluster)!;
      return countJobs(reads, {
        clusterId,
        name: req.name,
        createdAfter: req.createdAfter ? timestampDate(req.createdAfter) : null,
        createdBefore: req.createdBefore ? timestampDate(req.createdBefore) : null,
      });
    },
  };
}
