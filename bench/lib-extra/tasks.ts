import { StorageEventTask, Task } from "../../runner/index.js";

/** A task that does nothing, for scheduled and cron jobs. */
export class BenchScheduledNoop extends Task<Record<string, never>> {
  static identifier = { name: "BenchScheduledNoop", version: "v1.0" };
  execute(): void {}
}

/** A storage event task that does nothing (it does not even read the object). */
export class BenchStorageNoop extends StorageEventTask<{ source: string }> {
  static identifier = { name: "BenchStorageNoop", version: "v1.0" };
  execute(): void {}
}

/** A runner logger that keeps the benchmark's output clean but shows errors. */
export const quietLogger = { info() {}, warn() {}, error: (m: string) => console.error(`runner: ${m}`) };
