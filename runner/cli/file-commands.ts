import { type Command, Option } from "commander";
import type { Client } from "../sdk/client.js";
import { PATH_STATE_NAMES, type PathStateName } from "../sdk/paths.js";

/**
 * `sluice jobs paths` and `sluice jobs files`: the paths and path states of
 * file workflows, page by page (a page is printed before the next is read).
 */
export function addFileCommands(jobs: Command, client: () => Client, json: () => boolean): void {
  jobs
    .command("paths")
    .description("page through the paths of a file workflow's tasks: what they reported, their input, or the seed's payload")
    .argument("<job>", "the job's id")
    .option("--task <task>", "a task id, or a task's name or step number (all its chunks); all tasks when omitted")
    .addOption(new Option("--state <state...>", "only paths reported in these states").choices(PATH_STATE_NAMES))
    .option("--input", "list the tasks' input paths instead of what they reported")
    .option("--payload", "print the task's result in the seed's payload format (JSON; needs --task)")
    .action(async (job: string, opts: { task?: string; state?: PathStateName[]; input?: boolean; payload?: boolean }) => {
      const files = client().files();
      if (opts.payload) {
        if (!opts.task) throw new Error("--payload needs --task: the payload is that of one task (its chunks added up)");
        console.log(JSON.stringify(await files.payload(job, opts.task), null, 2));
        return;
      }
      let n = 0;
      for await (const p of files.paths(job, { task: opts.task, states: opts.state, input: opts.input })) {
        n++;
        if (json()) console.log(JSON.stringify(p));
        else console.log([p.taskId, opts.input ? "input" : p.state, p.path, p.message ?? ""].join("\t").trimEnd());
      }
      if (n === 0 && !json()) console.error("no paths");
    });

  jobs
    .command("files")
    .description("show the file tasks of a file workflow: paths per state, per task and per chunk")
    .argument("<job>", "the job's id")
    .action(async (id: string) => {
      const info = await client().files().job(id);
      if (json()) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      const counts = (s: Record<PathStateName, number>) => PATH_STATE_NAMES.map((k) => `${s[k]} ${k}`).join(", ");
      const lines = [`job ${info.job.id}: ${info.job.name} (${info.job.state})${info.site ? ` at site ${info.site}` : ""}`];
      for (const s of info.steps) lines.push(`  ${s.step}. ${s.task.padEnd(20)} ${String(s.inputTotal).padStart(9)} in: ${counts(s.summary)}`);
      lines.push("");
      for (const t of info.tasks) {
        lines.push(`  task ${t.taskId}  ${t.state.padEnd(9)}  ${t.task} chunk ${t.chunk}  ${t.inputTotal} in: ${counts(t.summary)}`);
      }
      console.log(lines.join("\n"));
    });
}
