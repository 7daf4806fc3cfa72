import { type PathObject, PathState } from "../../gen/sluice/v1/file_service_pb.js";
import type { PathIn } from "../store/path-lists.js";
import { PATH_STATES, type PathStateName } from "../store/task-paths.js";
import { checkText, invalid } from "../validation.js";

/** Paths per StagePaths call, inline submit, report or page. */
export const MAX_PATHS_PER_CALL = 10_000;
const DEFAULT_PAGE_SIZE = 1_000;
const MAX_PATH_LENGTH = 4096;
const MAX_SIZE = 2n ** 63n - 1n;

/** The API's path states and the database's, both ways. */
const STATE_OF: Record<number, PathStateName> = {
  [PathState.PROCESSED]: "processed",
  [PathState.SKIPPED]: "skipped",
  [PathState.ABORTED]: "aborted",
  [PathState.FAILURES]: "failures",
  [PathState.INPROGRESS]: "inprogress",
};
const STATE_TO: Record<PathStateName, PathState> = {
  processed: PathState.PROCESSED,
  skipped: PathState.SKIPPED,
  aborted: PathState.ABORTED,
  failures: PathState.FAILURES,
  inprogress: PathState.INPROGRESS,
};

export function stateName(s: PathState, where: string): PathStateName {
  const name = STATE_OF[s];
  if (!name) throw invalid(`${where} is ${s}, not a path state: use ${PATH_STATES.join(", ")}`);
  return name;
}

/** A path as stored, checked; `where` names it in errors. */
export function checkPath(path: string, where: string): string {
  if (path === "") throw invalid(`${where}: path is missing; every path object needs its path`);
  if (path.length > MAX_PATH_LENGTH) throw invalid(`${where}: path is ${path.length} characters; the limit is ${MAX_PATH_LENGTH}`);
  checkText(path, `${where}: path`);
  return path;
}

/** A path object as stored, checked. */
export function pathIn(p: PathObject, where: string): PathIn {
  checkPath(p.path, where);
  if (p.message !== "") checkText(p.message, `${where}: message`);
  let extra: string | null = null;
  if (p.extra !== undefined && Object.keys(p.extra).length > 0) {
    extra = JSON.stringify(p.extra);
    if (extra.includes("\\u0000")) throw invalid(`${where}: extra holds a NUL character, which cannot be stored`);
  }
  if (p.size !== undefined && p.size > MAX_SIZE) throw invalid(`${where}: size ${p.size} is larger than any file (at most 2^63 - 1 bytes)`);
  return { path: p.path, size: p.size === undefined ? null : p.size.toString(), message: p.message === "" ? null : p.message, extra };
}

/** Paths of one request, checked: each with its path, each once. */
export function pathsIn(paths: readonly PathObject[], field: string): PathIn[] {
  if (paths.length > MAX_PATHS_PER_CALL) {
    throw invalid(`${field}: ${paths.length} paths in one request; send at most ${MAX_PATHS_PER_CALL} (stage more with StagePaths)`);
  }
  const seen = new Set<string>();
  return paths.map((p, i) => {
    const out = pathIn(p, `${field}[${i}]`);
    if (seen.has(out.path)) throw invalid(`${field}[${i}]: path ${JSON.stringify(out.path)} is given twice; give each path once`);
    seen.add(out.path);
    return out;
  });
}

/**
 * A stored path as answered: the message written out as a literal, not
 * through `create`, which reflects over the schema for each of the thousands
 * of paths of a page.
 */
export function pathOut(
  row: { path: string; size: string | null; message: string | null; extra: Record<string, unknown> | null; state: PathStateName | null },
  taskId = "",
): PathObject {
  return {
    $typeName: "sluice.v1.PathObject",
    path: row.path,
    size: row.size === null ? undefined : BigInt(row.size),
    message: row.message ?? "",
    // biome-ignore lint: JSON read from jsonb is a JSON object
    extra: (row.extra ?? undefined) as any,
    state: row.state === null ? PathState.UNSPECIFIED : STATE_TO[row.state],
    taskId,
  };
}

/** Page tokens: what the next page starts after, opaque to clients. */
export const token = {
  encode: (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url"),
  decode<T>(t: string, check: (v: unknown) => v is T): T {
    try {
      const v = JSON.parse(Buffer.from(t, "base64url").toString("utf8"));
      if (check(v)) return v;
    } catch {}
    throw invalid("page_token is not one this server gave: pass next_page_token of the previous page unchanged");
  },
};

export function pageSize(n: number): number {
  if (n === 0) return DEFAULT_PAGE_SIZE;
  if (n > MAX_PATHS_PER_CALL) throw invalid(`page_size is ${n}; the limit is ${MAX_PATHS_PER_CALL}`);
  return n;
}
