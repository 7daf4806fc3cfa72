// The no-op file tasks of bench/files.ts: every path marked processed.
import { Client, FileTask, type PathStatus, type TaskPaths } from "../../runner/index.js";

async function processAll(paths: TaskPaths, status: PathStatus) {
  for await (const p of paths) status.add("processed", p);
}

export class BenchVerify extends FileTask {
  static identifier = { name: "BenchVerify", version: "v1.0" };
  processPaths = processAll;
}
export class BenchTranscode extends FileTask {
  static identifier = { name: "BenchTranscode", version: "v1.0" };
  processPaths = processAll;
}
export class BenchIndex extends FileTask {
  static identifier = { name: "BenchIndex", version: "v1.0" };
  processPaths = processAll;
}
