import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { JobState } from "../../gen/sluice/v1/job_pb.js";
import { type TaskLogLine, TaskLogLineSchema } from "../../gen/sluice/v1/observability_pb.js";
import {
  type JobProgressBar,
  JobProgressBarSchema,
  ObservabilityService,
  RunnerInfoSchema,
  TailJobLogsResponseSchema,
  UnrunnableTasksSchema,
} from "../../gen/sluice/v1/observability_service_pb.js";
import { jobStateToProto } from "../../runner/wire/states.js";
import type { JobFollowers } from "../observe/job-followers.js";
import { readJobProgress } from "../store/job-progress.js";
import { getJob } from "../store/read-jobs.js";
import { listRunners, unrunnableOfJob } from "../store/runners.js";
import { type LogLineRow, logsTruncated, readTaskLogs } from "../store/task-logs.js";
import { formatVersion, invalid, notFound, parseId } from "../validation.js";
import { type ServiceDeps, requireClusters } from "./deps.js";

const DEFAULT_LOG_PAGE = 1_000;
const MAX_LOG_PAGE = 5_000;
const DEFAULT_RUNNER_PAGE = 100;
const MAX_RUNNER_PAGE = 1_000;
const FINISHED = new Set(["completed", "failed", "cancelled"]);

export interface ObservabilityDeps extends ServiceDeps {
  followers: JobFollowers;
  /** Runners count as connected while their server said this recently that their session is open. */
  runnerFreshMs: number;
}

function lineToProto(r: LogLineRow): TaskLogLine {
  return create(TaskLogLineSchema, {
    id: r.id,
    taskId: r.task_id,
    jobId: r.job_id,
    attempt: r.attempt,
    level: r.level,
    time: timestampFromDate(r.logged_at),
    message: r.message,
    fieldsJson: r.fields ?? "",
  });
}

/** A `sentence` for people about tasks no runner can take. */
export function unrunnableMessage(name: string, version: string, runnerVersions: readonly string[]): string {
  const have = runnerVersions.length === 0 ? `no runner has ${name} at all` : `runners have ${runnerVersions.map((v) => `${name} ${v}`).join(", ")}`;
  return `no connected runner has ${name} ${version} (${have})`;
}

export function observabilityService(deps: ObservabilityDeps): ServiceImpl<typeof ObservabilityService> {
  // Reads go to the read pool: a follower or a dashboard never takes a connection of the queue.
  const { reads: sql, clusters, followers, runnerFreshMs } = deps;

  async function requireJob(jobId: string) {
    const job = await getJob(sql, parseId(jobId, "job_id"));
    if (!job) throw notFound(`job ${jobId} does not exist (finished jobs are deleted after the retention period)`);
    return job;
  }

  const taskFilter = (taskId: string) => (taskId === "" ? null : parseId(taskId, "task_id"));
  const afterOf = (after: string) => (after === "" ? "0" : parseId(after, "after"));
  const bars = (rows: Awaited<ReturnType<typeof readJobProgress>>): JobProgressBar[] =>
    rows.map((p) => create(JobProgressBarSchema, { label: p.label, done: BigInt(p.done), total: BigInt(p.total) }));

  return {
    async getTaskLogs(req) {
      const taskId = taskFilter(req.taskId);
      const after = afterOf(req.after);
      if (req.pageSize > MAX_LOG_PAGE) throw invalid(`page_size is ${req.pageSize}; the limit is ${MAX_LOG_PAGE}`);
      const limit = req.pageSize === 0 ? DEFAULT_LOG_PAGE : req.pageSize;
      const job = await requireJob(req.jobId);
      const [rows, truncated] = await Promise.all([readTaskLogs(sql, job.id, taskId, after, limit), logsTruncated(sql, job.id, taskId)]);
      return {
        lines: rows.map(lineToProto),
        nextPageToken: rows.length === limit ? rows[rows.length - 1].id : "",
        truncated,
      };
    },

    async *tailJobLogs(req, ctx) {
      const taskId = taskFilter(req.taskId);
      let after = afterOf(req.after);
      const job = await requireJob(req.jobId);
      // Woken by NOTIFYs about the job; wake-ups during a round fold into one more.
      let woken = true;
      let wake: (() => void) | null = null;
      const unfollow = await followers.follow(job.id, () => {
        woken = true;
        wake?.();
      });
      // The end of the call wakes the loop as a NOTIFY does (not a promise
      // raced at every wait: each race would leave a reaction on it until
      // the call ends).
      const onAbort = () => wake?.();
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        let state: JobState | undefined;
        let progress = "";
        while (!ctx.signal.aborted) {
          if (!woken) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = null;
            continue;
          }
          woken = false;
          // The state first: lines written before a job finished are read after it.
          const current = await getJob(sql, job.id);
          const rows = await readTaskLogs(sql, job.id, taskId, after, MAX_LOG_PAGE);
          const out = create(TailJobLogsResponseSchema, { lines: rows.map(lineToProto) });
          if (rows.length > 0) after = rows[rows.length - 1].id;
          const now = current ? jobStateToProto[current.state] : JobState.CANCELLED;
          if (now !== state) out.state = state = now;
          const p = bars(await readJobProgress(sql, job.id));
          const key = JSON.stringify(p, (_, v) => (typeof v === "bigint" ? v.toString() : v));
          if (key !== progress) {
            progress = key;
            out.progress = p;
          }
          if (out.lines.length > 0 || out.progress.length > 0 || out.state !== JobState.UNSPECIFIED) yield out;
          // More lines than a page: read on at once.
          if (rows.length === MAX_LOG_PAGE) {
            woken = true;
            continue;
          }
          if (!current || FINISHED.has(current.state)) return;
        }
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        await unfollow();
      }
    },

    async getJobProgress(req) {
      const job = await requireJob(req.jobId);
      const [progress, unrunnable] = await Promise.all([readJobProgress(sql, job.id), unrunnableOfJob(sql, job.id, runnerFreshMs)]);
      const slugs = new Map<number, string>();
      for (const u of unrunnable) if (!slugs.has(u.cluster_id)) slugs.set(u.cluster_id, await clusters.slug(u.cluster_id));
      return {
        state: jobStateToProto[job.state],
        progress: bars(progress),
        unrunnable: unrunnable.map((u) => {
          const version = formatVersion(u.major, u.minor);
          return create(UnrunnableTasksSchema, {
            cluster: slugs.get(u.cluster_id) ?? "",
            identifier: { name: u.name, version },
            count: u.count,
            runnerVersions: u.runner_versions,
            message: unrunnableMessage(u.name, version, u.runner_versions),
          });
        }),
      };
    },

    async listRunners(req) {
      if (req.pageSize > MAX_RUNNER_PAGE) throw invalid(`page_size is ${req.pageSize}; the limit is ${MAX_RUNNER_PAGE}`);
      const limit = req.pageSize === 0 ? DEFAULT_RUNNER_PAGE : req.pageSize;
      const clusterId = req.cluster === "" ? null : (await requireClusters(clusters, [req.cluster])).get(req.cluster)!;
      let after: { clusterId: number; id: string } | null = null;
      if (req.pageToken !== "") {
        const m = /^(\d{1,9})\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(req.pageToken);
        if (!m) throw invalid("page_token is not one this server gave: pass the next_page_token of the previous page");
        after = { clusterId: Number(m[1]), id: m[2] };
      }
      const rows = await listRunners(sql, clusterId, runnerFreshMs, after, limit);
      const runners = [];
      for (const r of rows) {
        runners.push(
          create(RunnerInfoSchema, {
            id: r.id,
            name: r.name,
            host: r.host,
            cluster: await clusters.slug(r.cluster_id),
            tasks: r.task_names.map((name, i) => ({ name, version: formatVersion(r.task_majors[i], r.task_minors[i]) })),
            concurrency: r.concurrency,
            prefetch: r.prefetch,
            inFlight: r.in_flight,
            connectedAt: timestampFromDate(r.connected_at),
            lastHeardAt: timestampFromDate(r.last_heard_at),
          }),
        );
      }
      const last = rows[rows.length - 1];
      return { runners, nextPageToken: rows.length === limit && last ? `${last.cluster_id}/${last.id}` : "" };
    },
  };
}
