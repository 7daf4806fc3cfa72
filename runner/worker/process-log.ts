import { StringDecoder } from "node:string_decoder";
import type { TaskLogger } from "../sdk/task.js";

/**
 * A process task's standard output and error as log lines of its attempt:
 * stdout lines at info, stderr lines at error, as console.log and
 * console.error are. A line is written once it is complete (or when the
 * process ended, for the last one).
 */
export class OutputLines {
  private readonly decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
  private readonly partial = { stdout: "", stderr: "" };

  constructor(private readonly logger: TaskLogger) {}

  write(stream: "stdout" | "stderr", chunk: Buffer): void {
    const text = this.partial[stream] + this.decoders[stream].write(chunk);
    const lines = text.split("\n");
    this.partial[stream] = lines.pop() ?? "";
    for (const line of lines) this.emit(stream, line);
  }

  /** The process ended: what is left of each stream is a line too. */
  end(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const rest = this.partial[stream] + this.decoders[stream].end();
      this.partial[stream] = "";
      if (rest !== "") this.emit(stream, rest);
    }
  }

  /** A whole log at once (a Kubernetes pod's, stdout and stderr together). */
  all(log: string): void {
    for (const line of log.split("\n")) if (line !== "") this.emit("stdout", line);
  }

  private emit(stream: "stdout" | "stderr", line: string): void {
    const text = line.endsWith("\r") ? line.slice(0, -1) : line;
    if (stream === "stdout") this.logger.info(text);
    else this.logger.error(text);
  }
}
