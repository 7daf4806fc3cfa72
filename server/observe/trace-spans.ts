import type { TaskResults } from "../../gen/sluice/v1/runner_service_pb.js";
import { type LiveSpan, tracing } from "../../runner/wire/tracing.js";
import type { LeasedTasks } from "../store/lease-tasks.js";
import type { TaskRow } from "../task-plan.js";

/**
 * The server's spans: submit (around the insert of a traced job), lease (a
 * task of a traced job handed to a runner) and complete (around the record
 * of a traced task's result). Nothing here runs unless tracing is on and the
 * task is traced.
 */

/**
 * Starts a "sluice.submit" span per traced job (one whose root tasks came with
 * a traceparent) and stores the span's context in its rows; returns the spans
 * to end once the insert is done (empty when nothing is traced).
 */
export function submitSpans(jobs: readonly { plan: { rows: TaskRow[] } }[]): LiveSpan[] {
  const t = tracing();
  if (!t) return [];
  const spans: LiveSpan[] = [];
  for (const j of jobs) {
    const parent = j.plan.rows.find((r) => r.traceparent)?.traceparent;
    if (!parent) continue;
    const span = t.span("sluice.submit", parent, "server");
    for (const r of j.plan.rows) if (r.traceparent) r.traceparent = span.traceparent;
    spans.push(span);
  }
  return spans;
}

/** Records a "sluice.lease" span per traced task leased; returns their contexts by task index. */
export function leaseSpans(t: LeasedTasks, cluster: string): { [task: number]: string } {
  const out: { [task: number]: string } = {};
  const tr = tracing();
  for (const [i, parent] of t.traceparents) {
    if (!tr) {
      out[i] = parent;
      continue;
    }
    const span = tr.span("sluice.lease", parent, "server");
    span.setAttribute("sluice.task_id", t.ids[i]);
    span.setAttribute("sluice.job_id", t.jobIds[i]);
    span.setAttribute("sluice.cluster", cluster);
    span.end();
    out[i] = span.traceparent;
  }
  return out;
}

/** Starts a "sluice.complete" span per traced result of a message (null when none is traced). */
export function completeSpans(req: TaskResults): LiveSpan[] | null {
  const t = tracing();
  if (!t) return null;
  let spans: LiveSpan[] | null = null;
  for (const r of req.results) {
    if (r.traceparent === "") continue;
    const span = t.span("sluice.complete", r.traceparent, "server");
    span.setAttribute("sluice.task_id", r.task?.taskId ?? "");
    span.setAttribute("sluice.outcome", r.outcome.case ?? "");
    (spans ??= []).push(span);
  }
  const c = req.computed;
  if (c) {
    for (const [i, parent] of Object.entries(c.traceparents)) {
      const span = t.span("sluice.complete", parent, "server");
      span.setAttribute("sluice.task_id", c.taskIds[Number(i)] ?? "");
      span.setAttribute("sluice.outcome", "computed");
      (spans ??= []).push(span);
    }
  }
  return spans;
}
