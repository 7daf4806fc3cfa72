import { type PathObject as PathMessage, PathState } from "../../gen/sluice/v1/file_service_pb.js";
import type { PathObject, PathStateName } from "../sdk/paths.js";

const STATE_OF: Record<number, PathStateName> = {
  [PathState.PROCESSED]: "processed",
  [PathState.SKIPPED]: "skipped",
  [PathState.ABORTED]: "aborted",
  [PathState.FAILURES]: "failures",
  [PathState.INPROGRESS]: "inprogress",
};

/** A path as the API sends it, as a task sees it: a plain path object. */
export function pathObjectOf(p: PathMessage, withState: boolean): PathObject {
  const out: PathObject = { ...(p.extra ?? {}), path: p.path };
  if (p.size !== undefined) out.size = Number(p.size);
  if (p.message !== "") out.message = p.message;
  if (withState && p.state !== PathState.UNSPECIFIED) out.state = STATE_OF[p.state];
  return out;
}
