/** The states a file task reports for a path (the seed's FileActionStatus keys). */
export const PATH_STATE_NAMES = ["processed", "skipped", "aborted", "failures", "inprogress"] as const;
export type PathStateName = (typeof PATH_STATE_NAMES)[number];

/**
 * A file, folder or symbolic link a file task works on: `path` and whatever
 * else it was given with (`size`, `message`, any other key).
 */
export interface PathObject {
  path: string;
  size?: number;
  /** A message about the path; a list of them in the seed's payload `details`. */
  message?: string | string[];
  /** Set by `context.allPaths()`: the state an earlier attempt reported for it. */
  state?: PathStateName;
  [key: string]: unknown;
}

/**
 * Where a file task reports the state of each path, as the seed's
 * FileActionStatus: `status.add("processed", path)`. Reports go to the server
 * in batches while the task runs and the rest when it ends; the task completes
 * only once every report was recorded.
 */
export interface PathStatus {
  /**
   * Records the state of one of the task's paths (a path string or the path
   * object from `context.paths`), with a message for failures. Adding a path
   * again replaces its state. Throws TypeError for an unknown state.
   */
  add(state: PathStateName, path: string | PathObject, message?: string | readonly string[]): void;
  /** Sends every state added so far and waits until the server recorded them. */
  flush(): Promise<void>;
  /** How many paths this attempt added, per state. */
  readonly summary: Readonly<Record<PathStateName, number>>;
}

/** A file task's input paths, read from the server page by page. */
export interface TaskPaths extends AsyncIterable<PathObject> {
  /** How many input paths the task has in all (earlier attempts' included). */
  total(): Promise<number>;
}
