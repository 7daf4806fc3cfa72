import { readFileSync } from "node:fs";
import { Task } from "../../runner/index.js";

/** A task submitted by name, version and input, as any API client would: it never runs here. */
export function named(name: string, version: string, input: object): Task {
  return new (class extends Task {
    static identifier = { name, version };
    execute() {
      throw new Error("process tasks run on the runner");
    }
  })(input as Record<string, unknown>);
}

/** Whether a process is still running (a zombie waiting to be reaped has ended). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
