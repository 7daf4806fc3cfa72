import type { PathStatus, TaskPaths } from "./paths.js";
import { type ExecutionContext, Task } from "./task.js";

/**
 * A task over many files (the seed's custom task): it reads its paths from
 * `context.paths` and reports a state for each through `context.status`.
 * Submit a chain of them with `client.files().submitWorkflow(...)`; the paths
 * one marks processed or skipped are the next one's input.
 *
 * ```ts
 * class Verify extends FileTask {
 *   static identifier = { name: "Verify", version: "v1.0" };
 *   async processPaths(paths: TaskPaths, status: PathStatus) {
 *     for await (const p of paths) {
 *       if (p.size) status.add("processed", p);
 *       else status.add("failures", p, "empty file");
 *     }
 *   }
 * }
 * ```
 */
export abstract class FileTask<Input extends object = Record<string, unknown>> extends Task<Input> {
  /** Works on the paths; every state added is recorded before the task completes. */
  abstract processPaths(paths: TaskPaths, status: PathStatus, context: ExecutionContext): void | Promise<void>;

  async execute(context: ExecutionContext): Promise<void> {
    await this.processPaths(context.paths, context.status, context);
    await context.status.flush();
  }
}
