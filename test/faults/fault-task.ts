import { appendFileSync } from "node:fs";
// Straight from the modules, not the package's index: the index loads every
// storage client, seconds of start-up for each runner process on a busy machine.
import { type ExecutionContext, Task } from "../../runner/sdk/task.js";

/**
 * The fault suite's task. Once it has run it appends "task-id lease pid" to
 * the file named by FAULT_RECORDS, so that executions are counted from the
 * tasks' own records as well as from Sluice's tables. One write(2) per line on
 * a file opened for appending: a SIGKILL leaves whole lines only.
 */
export class FaultTask extends Task<{ k: string; ms: number }> {
  static identifier = { name: "FaultTask", version: "v1.0" };

  async execute(context: ExecutionContext) {
    if (this.input.ms > 0) await new Promise((resolve) => setTimeout(resolve, this.input.ms));
    const records = process.env.FAULT_RECORDS;
    if (!records) throw new Error("FAULT_RECORDS is not set: the fault runner names the file of execution records");
    appendFileSync(records, `${context.taskId} ${context.attempt} ${process.pid}\n`);
  }
}
