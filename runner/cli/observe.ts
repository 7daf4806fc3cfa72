import type { Command } from "commander";
import type { Client } from "../sdk/client.js";
import type { JobProgress, LogLine, ProgressBar, RunnerInfo } from "../sdk/observability.js";
import type { TaskIdentifier } from "../sdk/task.js";

/** How the CLI prints: JSON with --json, else the text. */
type Print = (value: unknown, text: () => string) => void;

const stamp = (d: Date) => d.toISOString().replace("T", " ").replace("Z", "");

/** A log line as `sluice jobs logs` prints it. */
export function logLineText(l: LogLine): string {
  const fields = l.fields ? ` ${JSON.stringify(l.fields)}` : "";
  return `${stamp(l.time)}  task ${l.taskId}#${l.attempt}  ${l.level.toUpperCase().padEnd(5)}  ${l.message}${fields}`;
}

/** A progress bar of `width` characters. */
export function barText(p: ProgressBar, width = 30): string {
  const ratio = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
  const filled = Math.round(ratio * width);
  const percent = p.total > 0 ? `${Math.floor(ratio * 100)}%`.padStart(4) : "    ";
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${percent}  ${p.done}/${p.total || "?"}`;
}

/** What `sluice jobs show` adds: progress bars and the tasks no runner can take. */
export function progressText(p: JobProgress): string {
  const lines: string[] = [];
  if (p.progress.length > 0) {
    const width = Math.max(...p.progress.map((b) => b.label.length));
    lines.push("", "  progress");
    for (const b of p.progress) lines.push(`    ${b.label.padEnd(width)}  ${barText(b)}`);
  }
  for (const u of p.unrunnable) {
    lines.push("", `  waiting: ${u.count} ready task${u.count === 1 ? "" : "s"} on cluster ${u.cluster}: ${u.message}`);
  }
  return lines.join("\n");
}

/**
 * A warning when no connected runner of the cluster can execute a task of
 * this identifier (null when one can, or the runners cannot be listed).
 */
export async function unrunnableWarning(client: Client, cluster: string, identifier: TaskIdentifier): Promise<string | null> {
  let runners: RunnerInfo[];
  try {
    runners = await client.observability().runners({ cluster });
  } catch {
    return null;
  }
  const want = /^v(\d+)\.(\d+)$/.exec(identifier.version);
  if (!want) return null;
  const versions: string[] = [];
  for (const r of runners) {
    for (const t of r.tasks) {
      if (t.name !== identifier.name) continue;
      const have = /^v(\d+)\.(\d+)$/.exec(t.version);
      if (have && have[1] === want[1] && Number(have[2]) >= Number(want[2])) return null;
      if (!versions.includes(t.version)) versions.push(t.version);
    }
  }
  const has = versions.length === 0 ? `no runner has ${identifier.name} at all` : `runners have ${versions.map((v) => `${identifier.name} ${v}`).join(", ")}`;
  return `warning: no connected runner of cluster ${cluster} has ${identifier.name} ${identifier.version} (${has}); the job waits until one connects`;
}

/**
 * Follows a job to its end, showing its progress (redrawn in place on a
 * terminal, a line per change otherwise); resolves with its final state.
 */
export async function waitForJob(client: Client, jobId: string, out: NodeJS.WriteStream = process.stderr): Promise<string> {
  let state = "queued";
  let drawn = 0;
  const tty = out.isTTY === true;
  for await (const u of client.observability().follow(jobId)) {
    if (u.state && u.state !== state) {
      state = u.state;
      if (!tty || drawn === 0) out.write(`job ${jobId} is ${state}\n`);
    }
    if (u.progress) {
      const width = Math.max(...u.progress.map((b) => b.label.length));
      const lines = u.progress.map((b) => `  ${b.label.padEnd(width)}  ${barText(b)}`);
      if (tty && drawn > 0) out.write(`\x1b[${drawn}A`);
      for (const l of lines) out.write(`${tty ? "\x1b[2K" : ""}${l}\n`);
      drawn = tty ? lines.length : 0;
    }
  }
  return state;
}

/** `sluice jobs logs` and `sluice runners list`. */
export function addObservabilityCommands(program: Command, jobs: Command, client: () => Client, print: Print): void {
  jobs
    .command("logs")
    .description("print the log lines of a job's tasks, oldest first")
    .argument("<id>", "the job's id")
    .option("--task <id>", "only this task's lines")
    .option("-f, --follow", "keep printing new lines until the job finishes")
    .action(async (id: string, opts: { task?: string; follow?: boolean }) => {
      const api = client().observability();
      if (!opts.follow) {
        const lines = await api.logs(id, { taskId: opts.task });
        print(lines, () => (lines.length === 0 ? "no log lines" : lines.map(logLineText).join("\n")));
        return;
      }
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      try {
        for await (const u of api.follow(id, { taskId: opts.task, signal: stop.signal })) {
          for (const l of u.lines) console.log(program.opts().json ? JSON.stringify(l) : logLineText(l));
          if (u.state && ["completed", "failed", "cancelled"].includes(u.state)) console.error(`job ${id} ${u.state}`);
        }
      } catch (e) {
        if (!stop.signal.aborted) throw e;
      }
    });

  program
    .command("runners")
    .description("list the runners connected to the server")
    .command("list")
    .description("list connected runners: cluster, tasks, concurrency, tasks in flight")
    .option("--cluster <slug>", "only runners of this cluster")
    .action(async (opts: { cluster?: string }) => {
      const runners = await client().observability().runners({ cluster: opts.cluster });
      const time = (d: Date) => d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
      print(runners, () =>
        runners.length === 0
          ? "no runners connected"
          : runners
              .map(
                (r) =>
                  `${r.id}  ${r.cluster.padEnd(12)}  ${r.inFlight}/${r.concurrency}+${r.prefetch} in flight  since ${time(r.connectedAt)}  heard ${time(r.lastHeardAt)}  ${r.name} (${r.host})\n    ${r.tasks.map((t) => `${t.name} ${t.version}`).join(", ")}`,
              )
              .join("\n"),
      );
    });
}
