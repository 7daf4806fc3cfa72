import type { Sql } from "postgres";
import { MAX_PATHS_PER_CALL, token } from "../services/file-paths.js";
import { PATH_STATES, type PathStateName, fileTaskFor, reportPathStates, taskInputPage, taskInputTotal } from "../store/task-paths.js";
import { type HookCaller, HookError } from "./job-hook-auth.js";

const DEFAULT_PAGE_SIZE = 1_000;
const MAX_PATH_LENGTH = 4096;

/** The caller's file task, running under its attempt; 404 for a task that is not a file task. */
async function fileTask(sql: Sql, caller: HookCaller) {
  const f = await fileTaskFor(sql, caller.taskId, caller.lease, null);
  if (!f) throw new HookError(404, `task ${caller.taskId} is not a file task: only tasks of file workflows have paths`);
  if (!f.held) throw new HookError(401, `attempt ${caller.taskId}.${caller.lease} has ended`);
  return f;
}

/**
 * GET {JOB_HOOK}/paths?page_token=&page_size=&include_reported=1: a page of the
 * task's input paths as the seed's path objects, without a final state yet
 * unless include_reported (then with their `state`), as ListTaskPaths pages them.
 */
export async function hookPaths(sql: Sql, caller: HookCaller, query: URLSearchParams): Promise<unknown> {
  const f = await fileTask(sql, caller);
  const size = query.get("page_size") ?? "";
  const limit = size === "" ? DEFAULT_PAGE_SIZE : Number(size);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PATHS_PER_CALL) throw new HookError(400, `page_size must be 1 to ${MAX_PATHS_PER_CALL}, got ${JSON.stringify(size)}`);
  const pageToken = query.get("page_token") ?? "";
  let after: string | null = null;
  if (pageToken !== "") {
    try {
      after = token.decode(pageToken, (v): v is string => typeof v === "string" && (f.list_id === null || /^\d{1,18}$/.test(v)));
    } catch {
      throw new HookError(400, "page_token is not one this server gave: pass next_page_token of the previous page unchanged");
    }
  }
  const withStates = query.get("include_reported") === "1" || query.get("include_reported") === "true";
  const rows = await taskInputPage(sql, f, { after, limit, pendingOnly: !withStates });
  return {
    paths: rows.map((r) => ({
      ...(r.extra ?? {}),
      path: r.path,
      ...(r.size !== null && { size: Number(r.size) }),
      ...(r.message !== null && { message: r.message }),
      ...(withStates && r.state !== null && { state: r.state }),
    })),
    next_page_token: rows.length === limit ? token.encode(rows[rows.length - 1].key) : "",
    ...(after === null && { input_total: Number(await taskInputTotal(sql, f)) }),
  };
}

/**
 * POST {JOB_HOOK}/states {"states": [{"path": "/a", "state": "failures", "message": "why"}, ...]}:
 * records up to 10,000 states, as ReportPathStates does (all or nothing).
 */
export async function hookStates(sql: Sql, caller: HookCaller, body: unknown): Promise<unknown> {
  const list = (body as { states?: unknown } | null)?.states;
  const usage = 'send {"states": [{"path": "/a", "state": "processed"}, {"path": "/b", "state": "failures", "message": "why"}]}';
  if (!Array.isArray(list)) throw new HookError(400, usage);
  if (list.length > MAX_PATHS_PER_CALL) throw new HookError(400, `${list.length} states in one call; send at most ${MAX_PATHS_PER_CALL}`);
  const paths: string[] = [];
  const states: PathStateName[] = [];
  const messages: (string | null)[] = [];
  const seen = new Set<string>();
  list.forEach((s, i) => {
    const e = s as { path?: unknown; state?: unknown; message?: unknown } | null;
    if (typeof e?.path !== "string" || e.path === "") throw new HookError(400, `states[${i}]: path is missing; ${usage}`);
    if (e.path.length > MAX_PATH_LENGTH) throw new HookError(400, `states[${i}]: path is ${e.path.length} characters; the limit is ${MAX_PATH_LENGTH}`);
    if (!PATH_STATES.includes(e.state as PathStateName)) throw new HookError(400, `states[${i}]: state ${JSON.stringify(e.state)} is unknown: use ${PATH_STATES.join(", ")}`);
    if (e.message !== undefined && typeof e.message !== "string" && !Array.isArray(e.message)) throw new HookError(400, `states[${i}]: message must be a string or a list of strings`);
    if (seen.has(e.path)) throw new HookError(400, `states[${i}]: ${JSON.stringify(e.path)} is reported twice in one call`);
    seen.add(e.path);
    paths.push(e.path);
    states.push(e.state as PathStateName);
    const m = Array.isArray(e.message) ? e.message.map(String).join("\n") : (e.message ?? "");
    messages.push(m === "" ? null : m);
  });
  await fileTask(sql, caller);
  if (paths.length === 0) return { recorded: 0 };
  const out = await reportPathStates(sql, caller.taskId, caller.lease, null, paths, states, messages);
  if (out.kind === "not-held") throw new HookError(401, `attempt ${caller.taskId}.${caller.lease} has ended`);
  if (out.kind === "unknown-path") throw new HookError(400, `path ${JSON.stringify(out.path)} is not one of the input paths of task ${caller.taskId}: report states only for paths the task was given`);
  return { recorded: out.recorded };
}
