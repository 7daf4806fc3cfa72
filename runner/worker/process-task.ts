import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "shell-quote";
import { type ExecutionContext, Task, type TaskClass, parseVersion } from "../sdk/task.js";
import type { KubernetesJobs } from "./kubernetes-jobs.js";
import { OutputLines } from "./process-log.js";
import type { JobHookAccess, ProcessOutcome, ProcessTaskSpec } from "./process-types.js";

export type { JobHookAccess, ProcessOutcome, ProcessTaskSpec };

/** The process tasks a runner is given: `"name@vMAJOR.MINOR"` to how to run it. */
export type ProcessTasks = Readonly<Record<string, ProcessTaskSpec | string | readonly string[]>>;

/** Where a process's standard output and error go as they come (its log lines, and the tail of each for its error). */
export interface OutputSink {
  write(stream: "stdout" | "stderr", chunk: Buffer): void;
}

/** Keeps the last `max` bytes of each stream. */
export class OutputTail implements OutputSink {
  private readonly chunks = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  private readonly sizes = { stdout: 0, stderr: 0 };

  constructor(private readonly max = 8 * 1024) {}

  write(stream: "stdout" | "stderr", chunk: Buffer): void {
    const list = this.chunks[stream];
    list.push(chunk);
    this.sizes[stream] += chunk.length;
    while (list.length > 1 && this.sizes[stream] - list[0].length >= this.max) this.sizes[stream] -= list.shift()!.length;
  }

  /** The tail as text (a multi-byte character cut at the start shows as U+FFFD). */
  text(stream: "stdout" | "stderr"): string {
    const all = Buffer.concat(this.chunks[stream]);
    return all.subarray(Math.max(0, all.length - this.max)).toString("utf8");
  }
}

/** The one place a process's output is read: every chunk goes to `sink`. */
export function captureOutput(child: ChildProcess, sink: OutputSink): Promise<void> {
  const ended = (s: NodeJS.ReadableStream | null, name: "stdout" | "stderr") =>
    new Promise<void>((resolve) => {
      if (!s) return resolve();
      s.on("data", (chunk: Buffer) => sink.write(name, chunk));
      s.once("end", resolve);
      s.once("error", () => resolve());
      s.once("close", resolve);
    });
  return Promise.all([ended(child.stdout, "stdout"), ended(child.stderr, "stderr")]).then(() => {});
}

const IDENTIFIER = /^([^@\s]+)@(v\d+\.\d+)$/;

/** Splits a command line as a shell would, refusing what only a shell could do. */
export function splitCommand(line: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const words: string[] = [];
  for (const part of parse(line, (name) => env[name] ?? "")) {
    if (typeof part === "string") {
      words.push(part);
      continue;
    }
    const what = "op" in part && part.op === "glob" ? `the glob ${part.pattern}` : "comment" in part ? "a comment" : `the operator ${(part as { op: string }).op}`;
    throw new TypeError(
      `the command ${JSON.stringify(line)} has ${what}, which needs a shell: write a script, or give ["sh", "-c", "..."] as the command`,
    );
  }
  if (words.length === 0) throw new TypeError(`the command ${JSON.stringify(line)} is empty: give the program to run`);
  return words;
}

/** Checks a process task's spec and returns it with the command as words. */
export function normalizeSpec(key: string, spec: ProcessTaskSpec | string | readonly string[]): ProcessTaskSpec & { command: readonly string[] } {
  const s: ProcessTaskSpec = typeof spec === "string" || Array.isArray(spec) ? { command: spec as string | string[] } : (spec as ProcessTaskSpec);
  const command = typeof s.command === "string" ? splitCommand(s.command) : [...s.command];
  if (command.length === 0 || command.some((w) => typeof w !== "string")) {
    throw new TypeError(`process task ${key}: command must be a non-empty list of strings, or a command line`);
  }
  for (const [name, ms] of [["timeoutMs", s.timeoutMs], ["killGraceMs", s.killGraceMs]] as const) {
    if (ms !== undefined && (!Number.isInteger(ms) || ms <= 0)) throw new RangeError(`process task ${key}: ${name} must be a positive integer of milliseconds, got ${ms}`);
  }
  return { ...s, command };
}

/** The identifier in a process task's key, "name@vMAJOR.MINOR". */
export function parseProcessKey(key: string): { name: string; version: string } {
  const m = IDENTIFIER.exec(key);
  if (!m) throw new TypeError(`process task ${JSON.stringify(key)}: name it "NAME@vMAJOR.MINOR", e.g. "resize@v1.0"`);
  parseVersion(m[2]);
  return { name: m[1], version: m[2] };
}

export interface RunProcessOptions {
  spec: ProcessTaskSpec & { command: readonly string[] };
  /** The task's input as JSON. */
  input: Uint8Array;
  hook: JobHookAccess | undefined;
  /** More variables for the process (the task's ids). */
  env: Record<string, string>;
  signal: AbortSignal;
  output: OutputSink;
}

const DEFAULT_KILL_GRACE_MS = 10_000;

/** Process groups of process tasks running now: ended when the runner's own process exits. */
const running = new Set<number>();
let exitHook = false;

function track(pid: number): void {
  running.add(pid);
  if (exitHook) return;
  exitHook = true;
  // Detached children would outlive a runner that exits (process.exit, a
  // second Ctrl-C): "exit" handlers run synchronously, and so does kill.
  process.on("exit", () => {
    for (const p of running) {
      try {
        process.kill(-p, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
  });
}

/** The folder of this process's input files (one per running process task), made on first use. */
let inputDir: Promise<string> | undefined;
let inputCount = 0;

/**
 * Runs a process task's command once. The input is in the file named by
 * JOB_INPUT and on standard input. On abort or timeout its process group gets
 * SIGTERM, then SIGKILL after the grace period; once it exits, whatever of
 * its group is still running gets SIGKILL, so nothing it started outlives it.
 */
export async function runProcess(o: RunProcessOptions): Promise<ProcessOutcome> {
  inputDir ??= mkdtemp(join(tmpdir(), "sluice-inputs-"));
  const inputFile = join(await inputDir, `${o.env.SLUICE_TASK_ID ?? "task"}-${o.env.SLUICE_ATTEMPT ?? "0"}-${++inputCount}.json`);
  try {
    await writeFile(inputFile, o.input, { mode: 0o600 });
    const env: NodeJS.ProcessEnv = { ...process.env, ...o.spec.env, ...o.env, JOB_INPUT: inputFile };
    if (o.hook) Object.assign(env, { JOB_ID: o.hook.jobId, JOB_SECRET_KEY: o.hook.secretKey, JOB_HOOK: o.hook.url });
    const [program, ...args] = o.spec.command;
    const child = spawn(program, args, { cwd: o.spec.cwd, env, detached: true, stdio: ["pipe", "pipe", "pipe"] });
    if (child.pid !== undefined) track(child.pid);
    const output = captureOutput(child, o.output);
    // A process that does not read its input closes the pipe: not an error.
    child.stdin!.on("error", () => {});
    child.stdin!.end(o.input);

    let stopped: string | null = null;
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const terminate = () => {
      signalGroup(child, "SIGTERM");
      killTimer ??= setTimeout(() => signalGroup(child, "SIGKILL"), o.spec.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    };
    const onAbort = () => {
      stopped ??= String((o.signal.reason as Error | undefined)?.message ?? o.signal.reason ?? "stopped");
      terminate();
    };
    const timer =
      o.spec.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            terminate();
          }, o.spec.timeoutMs);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    if (o.signal.aborted) onAbort();
    else o.signal.addEventListener("abort", onAbort, { once: true });
    try {
      const { code, signal } = await exited;
      return { code, signal, timedOut, stopped };
    } finally {
      o.signal.removeEventListener("abort", onAbort);
      clearTimeout(timer);
      clearTimeout(killTimer);
      // What the process left running in its group (a background child) ends with it.
      signalGroup(child, "SIGKILL");
      if (child.pid !== undefined) running.delete(child.pid);
      await output;
    }
  } finally {
    await rm(inputFile, { force: true });
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

/** The failure message of a process that did not exit with 0, ending with its standard error's tail. */
export function failureMessage(o: ProcessOutcome, spec: ProcessTaskSpec, stderr: string): string {
  if (o.message && !o.stopped && !o.timedOut) return o.message;
  const why = o.stopped
    ? `was stopped (${o.stopped})`
    : o.timedOut
      ? `timed out after ${spec.timeoutMs} ms`
      : o.signal
          ? `was ended by ${o.signal}`
          : `exited with code ${o.code}`;
  const tail = stderr.trimEnd();
  return tail ? `the process ${why}: ${tail}` : `the process ${why}`;
}

/** Raised by a process task's `execute` when its process fails: carries the output tails. */
export class ProcessFailure extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = "ProcessFailure";
    // The "stack" a failed task shows is the process's output.
    this.stack = `stdout:\n${stdout}\nstderr:\n${stderr}`;
  }
}

/** The part of a task's execution a process task needs besides the context. */
export interface ProcessAttempt {
  hook: JobHookAccess | undefined;
  /** The task's input as it was assigned (JSON). */
  input: Uint8Array;
  /** Set when process tasks run as Kubernetes Jobs. */
  kubernetes?: KubernetesJobs;
  /** Called with the output tails once the process has exited, before its result is reported. */
  finished(stdout: string, stderr: string): Promise<void>;
}

/** A class the runner registers for a process task; `execute` runs the command. */
export interface ProcessTaskClass extends TaskClass {
  readonly processSpec: ProcessTaskSpec & { command: readonly string[] };
}

/** Makes the task class that runs `spec` for the identifier in `key`. */
export function processTaskClass(key: string, raw: ProcessTaskSpec | string | readonly string[], attemptOf: (context: ExecutionContext) => ProcessAttempt): ProcessTaskClass {
  const identifier = parseProcessKey(key);
  const spec = normalizeSpec(key, raw);
  return class ProcessTask extends Task {
    static identifier = identifier;
    static readonly processSpec = spec;

    async execute(context: ExecutionContext): Promise<void> {
      const attempt = attemptOf(context);
      const tail = new OutputTail();
      // Every line of output is also a log line of the attempt.
      const lines = new OutputLines(context.logger);
      if (attempt.kubernetes) {
        const a = { taskId: context.taskId, jobId: context.jobId, lease: context.attempt, ...identifier, input: attempt.input, hook: attempt.hook };
        const outcome = await attempt.kubernetes.run(a, spec, context.signal);
        lines.all(outcome.log);
        // A pod's log holds its standard output and error together.
        await attempt.finished(outcome.log, "");
        if (outcome.code !== 0 || outcome.timedOut || outcome.stopped) throw new ProcessFailure(failureMessage(outcome, spec, ""), outcome.log, "");
        return;
      }
      const outcome = await runProcess({
        spec,
        input: attempt.input,
        hook: attempt.hook,
        env: { SLUICE_JOB_ID: context.jobId, SLUICE_TASK_ID: context.taskId, SLUICE_ATTEMPT: String(context.attempt) },
        signal: context.signal,
        output: {
          write(stream, chunk) {
            tail.write(stream, chunk);
            lines.write(stream, chunk);
          },
        },
      });
      lines.end();
      const stdout = tail.text("stdout");
      const stderr = tail.text("stderr");
      await attempt.finished(stdout, stderr);
      if (outcome.code !== 0 || outcome.timedOut || outcome.stopped) throw new ProcessFailure(failureMessage(outcome, spec, stderr), stdout, stderr);
    }
  };
}
