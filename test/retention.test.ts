import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type ExecutionContext, Task } from "../runner/index.js";
import { eventually, quiet, useSandbox } from "./support/harness.js";

class Quick extends Task {
  static identifier = { name: "Quick", version: "v1.0" };
  execute() {}
}

/** Submits three subtasks, two of them after the first: two dependency edges. */
class FanOut extends Task {
  static identifier = { name: "FanOut", version: "v1.0" };
  execute(context: ExecutionContext) {
    const first = context.submitSubtask(new Quick());
    context.submitSubtasks([new Quick(), new Quick()], { dependsOn: [first] });
  }
}

class Waiting extends Task {
  static identifier = { name: "Waiting", version: "v1.0" };
  execute() {}
}

describe("job retention", () => {
  const box = useSandbox({ jobRetention: { retentionMs: 1_000, intervalMs: 200, batchSize: 2 } });

  it("deletes finished jobs with their tasks once they are older than the retention, and keeps unfinished ones", async () => {
    const jobs = box.client.jobs();
    const done = await Promise.all([1, 2, 3].map((i) => jobs.submit(`done ${i}`, new Quick())));
    // A job whose tasks depend on each other: its dependency rows go with it.
    const fan = await jobs.submit("fan", new FanOut());
    const waiting = await jobs.submit("waiting", new Waiting());
    await box.client.runner("default", { tasks: [Quick, FanOut], logger: quiet }).runAll();
    expect((await jobs.get(fan.id)).state).toBe("completed");
    const fanTasks = (await jobs.get(fan.id)).tasks.map((t) => t.id);
    const edges = async () =>
      (
        await box.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM task_dependencies
          WHERE task_id = ANY(${fanTasks}::bigint[]) OR depends_on = ANY(${fanTasks}::bigint[])`
      )[0].n;
    expect(await edges()).toBe(2);
    // What the job hook and file workflows keep of a job and its tasks,
    // written as they write it: it goes with the job.
    const [list] = await box.sql<{ id: string }[]>`INSERT INTO path_lists (job_id, total) VALUES (${fan.id}, 1) RETURNING id`;
    await box.sql`INSERT INTO path_list_items (list_id, ord, path) VALUES (${list.id}, 1, 'a.txt')`;
    await box.sql`INSERT INTO file_tasks (task_id, job_id, step, chunk, list_id, first_ord, last_ord) VALUES (${fanTasks[0]}, ${fan.id}, 0, 0, ${list.id}, 1, 1)`;
    await box.sql`INSERT INTO path_states (task_id, path, state) VALUES (${fanTasks[0]}, 'a.txt', 'processed')`;
    await box.sql`INSERT INTO task_hook_status (task_id, lease, status) VALUES (${fanTasks[1]}, 1, '{"step": 1}')`;
    await box.sql`INSERT INTO task_hook_subtasks (task_id, lease, position, submission) VALUES (${fanTasks[1]}, 1, 0, '{}')`;
    const leftOf = async () =>
      (
        await box.sql<{ n: number }[]>`SELECT n::int FROM (
          SELECT (SELECT count(*) FROM path_lists WHERE job_id = ${fan.id})
               + (SELECT count(*) FROM path_list_items WHERE list_id = ${list.id})
               + (SELECT count(*) FROM file_tasks WHERE job_id = ${fan.id})
               + (SELECT count(*) FROM path_states WHERE task_id = ANY(${fanTasks}::bigint[]))
               + (SELECT count(*) FROM task_hook_status WHERE task_id = ANY(${fanTasks}::bigint[]))
               + (SELECT count(*) FROM task_hook_subtasks WHERE task_id = ANY(${fanTasks}::bigint[])) AS n) AS left_over`
      )[0].n;
    expect(await leftOf()).toBe(6);

    await eventually(async () => {
      // The fan-out job finished last, so it goes last.
      const err = await jobs.get(fan.id).then(() => undefined, ConnectError.from);
      return err?.code === Code.NotFound;
    }, 20_000, "the finished jobs to be deleted");
    for (const j of [...done, fan]) await expect(jobs.get(j.id)).rejects.toThrow(/does not exist/);
    expect(await edges()).toBe(0);
    expect(await leftOf()).toBe(0);
    const tasksOf = async (ids: string[]) =>
      (await box.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM tasks WHERE job_id = ANY(${ids}::bigint[])`)[0].n;
    expect(await tasksOf([...done, fan].map((j) => j.id))).toBe(0);
    expect((await jobs.get(waiting.id)).state).toBe("queued");
    expect(await tasksOf([waiting.id])).toBe(1);
  });
});
