/** The types process tasks share with the ways they run (child process, Kubernetes Job). */

/** A task identifier bound to a command line instead of a class (see docs/process-tasks.md). */
export interface ProcessTaskSpec {
  /**
   * The program and its arguments; a string is split as a POSIX shell would
   * (quotes, escapes, `$VAR` from the runner's environment), without running
   * a shell: pipes, redirections and globs are refused.
   */
  command: string | readonly string[];
  /** The working directory (default: the runner's). */
  cwd?: string;
  /** Variables added to the runner's environment for the process. */
  env?: Readonly<Record<string, string>>;
  /** The attempt fails once the process has run this long (default: no limit). */
  timeoutMs?: number;
  /** How long a process may take to exit after SIGTERM before it gets SIGKILL (default 10 s). */
  killGraceMs?: number;
  /** As a Kubernetes Job: the container image (default: the runner's kubernetes.image). */
  image?: string;
  /** As a Kubernetes Job: the container's resources, e.g. `{ limits: { cpu: "2", memory: "4Gi" } }`. */
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

/** How a process reaches the job hook of its attempt (from the assignment). */
export interface JobHookAccess {
  /** JOB_ID: "TASK_ID.LEASE". */
  jobId: string;
  /** JOB_SECRET_KEY. */
  secretKey: string;
  /** JOB_HOOK. */
  url: string;
}

/** What came of one run of a process. */
export interface ProcessOutcome {
  /** The exit code, or null if a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Why it was stopped (cancellation, lease lost), if it was. */
  stopped: string | null;
  /** What else is known of a failure (a Kubernetes Job's condition). */
  message?: string;
}
