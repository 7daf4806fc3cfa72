import { type ExecutionContext, type SubtaskHandle, Task } from "../runner/index.js";
import type { Recorder } from "./lib/child-side.js";
import type { NoopInput } from "./lib/protocol.js";

/** Set by the runner process before it starts: where tasks record their start. */
export const hooks: { recorder?: Recorder } = {};

/** BENCH_TASK_LOG=1: each task writes one log line (what task logs cost). */
const LOG_A_LINE = process.env.BENCH_TASK_LOG === "1";

/** Does nothing but record when it started, relative to the submit time in its input. */
export class Noop extends Task<NoopInput> {
  static identifier = { name: "BenchNoop", version: "v1.0" };
  execute(context: ExecutionContext): void {
    hooks.recorder?.started(this.input.w ? undefined : this.input.t);
    if (LOG_A_LINE) context.logger.info("bench task ran");
  }
}

/** The root of the fan-out job: `n` leaves, then one task that depends on all of them. */
export class FanoutRoot extends Task<{ n: number }> {
  static identifier = { name: "BenchFanoutRoot", version: "v1.0" };
  execute(context: ExecutionContext): void {
    hooks.recorder?.started(undefined);
    const leaves: SubtaskHandle[] = new Array(this.input.n);
    for (let i = 0; i < this.input.n; i++) leaves[i] = context.submitSubtask(new FanoutLeaf({}));
    context.submitSubtask(new FanoutFinal({}), { dependsOn: leaves });
  }
}

export class FanoutLeaf extends Task<Record<string, never>> {
  static identifier = { name: "BenchFanoutLeaf", version: "v1.0" };
  execute(): void {
    hooks.recorder?.started(undefined);
  }
}

export class FanoutFinal extends Task<Record<string, never>> {
  static identifier = { name: "BenchFanoutFinal", version: "v1.0" };
  execute(): void {
    hooks.recorder?.started(undefined);
  }
}

export const allTasks = [Noop, FanoutRoot, FanoutLeaf, FanoutFinal];
