import { toJsonString } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { TaskSubmission } from "../gen/sluice/v1/task_pb.js";
import { isJsonText } from "./json-text.js";
import type { TriggerJson } from "../runner/wire/storage-event.js";
import { checkTrigger } from "./sources/trigger.js";
import {
  MAX_RETRIES_LIMIT,
  MAX_TASK_INPUT_BYTES,
  MAX_TASKS_PER_SUBMISSION,
  type ParsedIdentifier,
  checkText,
  invalid,
  unstorableText,
  parseIdentifier,
} from "./validation.js";

/** One task to insert, with its dependencies resolved to positions in the batch. */
export interface TaskRow {
  /** 1-based position in the whole insert batch; ids are assigned by position. */
  ord: number;
  jobId: string | null;
  /** For tasks of new jobs submitted together: the 1-based position of the task's job. */
  jobOrd?: number;
  parentId: string | null;
  /** null: the parent task's cluster, filled in once the parent is known. */
  clusterId: number | null;
  name: string;
  major: number;
  minor: number;
  display: string | null;
  input: Uint8Array;
  maxRetries: number;
  depsLeft: number;
  hasDependents: boolean;
  /** The storage event a storage event task handles. */
  trigger: TriggerJson | null;
  /** The W3C trace context of the span that submitted the task, for traced tasks. */
  traceparent?: string | null;
  /** Retry backoff and time limit (absent: retry at once, no limit). */
  policy?: TaskPolicy | null;
  /**
   * The runner this task is inserted already leased to (lease 1), when it is
   * handed straight to a waiting runner (Dispatcher.reserveHandOffs).
   */
  leaseTo?: string;
}

/** Tasks to insert and their dependency edges, as batch positions. */
export interface TaskPlan {
  rows: TaskRow[];
  depFrom: number[];
  depTo: number[];
}

export function emptyPlan(): TaskPlan {
  return { rows: [], depFrom: [], depTo: [] };
}

/** Every cluster slug the submissions name explicitly. */
export function clusterSlugsOf(submissions: readonly TaskSubmission[]): string[] {
  return [...new Set(submissions.map((s) => s.cluster).filter((c) => c !== ""))];
}

export interface PlanContext {
  /** Names the submission in error messages, e.g. "task 3" or "subtask 2 of task 17". */
  where: string;
  jobId: string | null;
  parentId: string | null;
  /** The cluster of submissions that name none; null for the parent's. */
  defaultClusterId: number | null;
  clusterIds: ReadonlyMap<string, number>;
}

/**
 * Validates a list of submissions made together (the root tasks of a job, or the
 * subtasks of one completed task) and appends them to `plan`. Throws
 * InvalidArgument, naming the offending submission, for a bad identifier, an
 * input that is empty, too large or not JSON, an unknown dependency index or a
 * dependency cycle.
 */
export function addSubmissions(plan: TaskPlan, submissions: readonly TaskSubmission[], ctx: PlanContext): void {
  if (submissions.length > MAX_TASKS_PER_SUBMISSION) {
    throw invalid(`${ctx.where}: ${submissions.length} tasks submitted at once; the limit is ${MAX_TASKS_PER_SUBMISSION}`);
  }
  const base = plan.rows.length;
  const n = submissions.length;
  // Tasks without dependencies (the common case) share one empty list, and
  // need no cycle check: nothing here is allocated per task but its row.
  let deps: (readonly number[])[] | null = null;
  let hasDependents: boolean[] | null = null;
  const parsed: ParsedIdentifier[] = new Array(n);
  const inputs: Uint8Array[] = new Array(n);
  const at = (i: number) => `${ctx.where}, task ${i}`;
  for (let i = 0; i < n; i++) {
    const s = submissions[i];
    if (!s.identifier) throw invalid(`${at(i)}: identifier is missing`);
    parsed[i] = parseIdentifier(s.identifier.name, s.identifier.version, at, i);
    inputs[i] = taskInput(s, at, i);
    // Tested first so that text without fault costs no message.
    if (unstorableText(s.display) !== null || unstorableText(s.cluster) !== null) {
      checkText(s.display, `${at(i)}: display`);
      checkText(s.cluster, `${at(i)}: cluster`);
    }
    if (s.maxRetries > MAX_RETRIES_LIMIT) {
      throw invalid(`${at(i)}: max_retries is ${s.maxRetries}; the limit is ${MAX_RETRIES_LIMIT}`);
    }
    if (s.dependsOn.length === 0) continue;
    deps ??= new Array<readonly number[]>(n).fill(NO_DEPENDENCIES);
    hasDependents ??= new Array<boolean>(n).fill(false);
    const own = [...new Set(s.dependsOn)];
    for (const d of own) {
      if (d >= n) {
        throw invalid(`${at(i)}: depends_on names task ${d}, but only ${n} tasks were submitted together (indices 0 to ${n - 1})`);
      }
      if (d === i) throw invalid(`${at(i)}: a task cannot depend on itself`);
      hasDependents[d] = true;
    }
    deps[i] = own;
  }
  if (deps) checkAcyclic(deps, ctx.where);
  for (let i = 0; i < n; i++) {
    const s = submissions[i];
    const id = parsed[i];
    const own = deps?.[i] ?? NO_DEPENDENCIES;
    plan.rows.push({
      ord: base + i + 1,
      jobId: ctx.jobId,
      parentId: ctx.parentId,
      clusterId: s.cluster === "" ? ctx.defaultClusterId : ctx.clusterIds.get(s.cluster)!,
      name: id.name,
      major: id.major,
      minor: id.minor,
      display: s.display === "" ? null : s.display,
      input: inputs[i],
      maxRetries: s.maxRetries,
      depsLeft: own.length,
      hasDependents: hasDependents?.[i] ?? false,
      trigger: s.trigger ? checkTrigger(s.trigger, at(i)) : null,
      traceparent: s.traceparent === "" ? null : checkTraceparent(s.traceparent, at(i)),
      policy: s.retryBackoff || s.timeout ? policyOf(s, at(i)) : null,
    });
    for (const d of own) {
      plan.depFrom.push(base + d + 1);
      plan.depTo.push(base + i + 1);
    }
  }
}

const NO_DEPENDENCIES: readonly number[] = Object.freeze([]);

/** A task's retry backoff and time limit, in milliseconds (null: none). */
export interface TaskPolicy {
  retryDelayMs: number | null;
  retryFactor: number | null;
  retryMaxMs: number | null;
  timeoutMs: number | null;
}

const DAY_MS = 86_400_000;

/** A Duration in milliseconds, checked to be within [min, max]; throws InvalidArgument. */
function durationMs(d: { seconds: bigint; nanos: number }, what: string, min: number, max: number): number {
  const ms = Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
  if (!Number.isFinite(ms) || ms < min || ms > max || d.nanos < 0) {
    throw invalid(`${what} is ${ms} ms; use ${min} ms to ${max / DAY_MS} day${max === DAY_MS ? "" : "s"}`);
  }
  return ms;
}

function policyOf(s: TaskSubmission, where: string): TaskPolicy {
  const policy: TaskPolicy = { retryDelayMs: null, retryFactor: null, retryMaxMs: null, timeoutMs: null };
  const b = s.retryBackoff;
  if (b) {
    if (!b.initialDelay) throw invalid(`${where}: retry_backoff.initial_delay is missing: the delay before the first retry`);
    policy.retryDelayMs = durationMs(b.initialDelay, `${where}: retry_backoff.initial_delay`, 1, DAY_MS);
    const factor = b.factor === 0 ? 2 : b.factor;
    if (!(factor >= 1 && factor <= 10)) throw invalid(`${where}: retry_backoff.factor is ${b.factor}; use 1 to 10`);
    policy.retryFactor = factor;
    policy.retryMaxMs = b.maxDelay ? durationMs(b.maxDelay, `${where}: retry_backoff.max_delay`, policy.retryDelayMs, DAY_MS) : DAY_MS;
  }
  if (s.timeout) policy.timeoutMs = durationMs(s.timeout, `${where}: timeout`, 1, 7 * DAY_MS);
  return policy;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** A W3C traceparent, e.g. "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; throws InvalidArgument. */
function checkTraceparent(value: string, where: string): string {
  if (!TRACEPARENT.test(value)) {
    throw invalid(`${where}: traceparent ${JSON.stringify(value.slice(0, 80))} is not a W3C traceparent such as "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`);
  }
  return value;
}

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A submission's input as stored: `input` checked to be JSON, or `input_json`
 * written as JSON. Throws InvalidArgument for an input that is missing, both
 * given, not JSON, or over the size limit. `where(i)` names the submission.
 */
export function taskInput(s: TaskSubmission, where: (i: number) => string, i = 0): Uint8Array {
  let input = s.input;
  if (s.inputJson !== undefined) {
    if (input.length > 0) throw invalid(`${where(i)}: input and input_json are both set; send the input once`);
    try {
      input = encoder.encode(toJsonString(ValueSchema, s.inputJson));
    } catch (e) {
      throw invalid(`${where(i)}: input_json cannot be written as JSON: ${(e as Error).message}`);
    }
  } else if (input.length === 0) {
    throw invalid(`${where(i)}: input is empty; a task needs its input fields as JSON (use "{}" for a task without fields)`);
  }
  if (input.length > MAX_TASK_INPUT_BYTES) {
    throw invalid(`${where(i)}: input is ${input.length} bytes; the limit is ${MAX_TASK_INPUT_BYTES} bytes (1 MiB): pass large data through the job cache`);
  }
  if (s.inputJson === undefined && !isJsonText(input)) {
    throw invalid(`${where(i)}: input is not JSON (${whyNotJson(input)}); a task's input is its fields as JSON in UTF-8, e.g. {"who":"world"}`);
  }
  return input;
}

/** What the parser says of input that is not JSON (only for the message: isJsonText decides). */
function whyNotJson(input: Uint8Array): string {
  try {
    JSON.parse(utf8.decode(input));
    return "it begins with a byte order mark";
  } catch (e) {
    return e instanceof TypeError ? "it is not UTF-8" : (e as Error).message;
  }
}

/** Kahn's algorithm: throws InvalidArgument naming the tasks on a cycle. */
function checkAcyclic(deps: readonly (readonly number[])[], where: string): void {
  const n = deps.length;
  const indegree = deps.map((d) => d.length);
  const dependents: number[][] = Array.from({ length: n }, () => []);
  deps.forEach((ds, i) => ds.forEach((d) => dependents[d].push(i)));
  const ready: number[] = [];
  indegree.forEach((deg, i) => deg === 0 && ready.push(i));
  let seen = 0;
  while (ready.length > 0) {
    const i = ready.pop()!;
    seen++;
    for (const j of dependents[i]) if (--indegree[j] === 0) ready.push(j);
  }
  if (seen < n) {
    const onCycle = indegree.flatMap((deg, i) => (deg > 0 ? [i] : []));
    throw invalid(`${where}: depends_on forms a cycle among tasks ${onCycle.join(", ")}; dependencies must form a DAG`);
  }
}

/** Appends `source` to `target`, renumbering its batch positions. */
export function appendPlan(target: TaskPlan, source: TaskPlan): void {
  const offset = target.rows.length;
  for (const r of source.rows) target.rows.push({ ...r, ord: r.ord + offset });
  for (const f of source.depFrom) target.depFrom.push(f + offset);
  for (const t of source.depTo) target.depTo.push(t + offset);
}
