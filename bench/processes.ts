/**
 * How many process tasks one runner starts per second, against a real
 * `sluice server` process. A process start is the floor, so the same commands
 * are first spawned N times straight from Node (child_process.spawn, detached,
 * stdin/stdout/stderr piped, as the runner does), at the same concurrency,
 * with no Sluice involved.
 *
 * Then N jobs of one process task each are submitted beforehand (JobService.SubmitJobs,
 * 500 per call), and one runner (concurrency C, in this process) drains them:
 * tasks/s = N / (runner start -> runAll() resolved, every result recorded).
 *
 * Commands:
 *   true     /bin/true: no output, no hook call (the floor);
 *   echo     sh -c 'echo "$JOB_ID"': output, which the runner posts to the job hook (POST /output);
 *   python   python3 with the seed's job.py: send_status() over the hook, then exits.
 *
 * npm run bench:processes [-- --quick] [--tasks N] [--concurrency C] [--only true|echo|python]
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import postgres from "postgres";
import { JobService } from "../gen/sluice/v1/job_service_pb.js";
import { Client } from "../runner/index.js";
import { Databases, ROOT, inParallel, log, main, option, printHeader, quick, startServer } from "./lib-extra/common.js";
import { quietLogger } from "./lib-extra/tasks.js";

const TASKS = Number(option("tasks") ?? (quick ? 300 : 2_000));
const CONCURRENCY = Number(option("concurrency") ?? 8);
const only = option("only");
const INPUT = new TextEncoder().encode('{"n":1}');

const COMMANDS: { label: string; command: string[] }[] = [
  { label: "true", command: ["true"] },
  { label: "echo", command: ["sh", "-c", 'echo "$JOB_ID"'] },
  {
    label: "python",
    command: ["python3", "-c", `import sys; sys.path.insert(0, ${JSON.stringify(join(ROOT, "test", "fixtures", "job-hook"))}); from job import send_status; send_status({"progress": 100})`],
  },
];

/** N spawns of `command`, `CONCURRENCY` at a time, each waited for to exit: the floor. */
async function spawnFloor(command: string[]): Promise<number> {
  const t = performance.now();
  await inParallel(Array.from({ length: TASKS }), CONCURRENCY, async () => {
    const child = spawn(command[0], command.slice(1), { detached: true, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, JOB_ID: "1.1", JOB_SECRET_KEY: "x", JOB_HOOK: "http://127.0.0.1:1" } });
    child.stdin.on("error", () => {});
    child.stdin.end(INPUT);
    child.stdout.resume();
    child.stderr.resume();
    await new Promise((resolve) => child.once("close", resolve));
  });
  return (TASKS * 1000) / (performance.now() - t);
}

await main(async (cleanup) => {
  await printHeader("Process tasks started per second by one runner");
  log(`tasks: ${TASKS} per command, runner concurrency ${CONCURRENCY}, prefetch ${CONCURRENCY}`);
  const dbs = new Databases();
  const results: string[] = [];
  for (const { label, command } of COMMANDS) {
    if (only && only !== label) continue;
    const db = await dbs.create(`procs_${label}`);
    cleanup(() => dbs.drop(db.name));
    const server = await startServer(db.url);
    const client = new Client({ url: server.url });
    const api = createClient(JobService, client.transport);
    const identifier = { name: `bench-${label}`, version: "v1.0" };
    for (let i = 0; i < TASKS; i += 500) {
      const n = Math.min(500, TASKS - i);
      await api.submitJobs({ jobs: Array.from({ length: n }, () => ({ name: "bench", cluster: "default", tasks: [{ identifier, input: INPUT, dependsOn: [] }] })) });
    }
    // Spawned directly, the python command's hook call is refused at once (no server at JOB_HOOK).
    const direct = await spawnFloor(command);

    const runner = client.runner("default", { logger: quietLogger, concurrency: CONCURRENCY, processes: { [`bench-${label}@v1.0`]: command } });
    const t = performance.now();
    await runner.runAll();
    const rate = (TASKS * 1000) / (performance.now() - t);
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const [{ computed }] = await sql<{ computed: number }[]>`SELECT count(*)::int AS computed FROM tasks WHERE state = 'computed'`;
    await sql.end({ timeout: 5 });
    client.close();
    await server.stop();
    if (computed !== TASKS) throw new Error(`${label}: ${computed} of ${TASKS} tasks computed`);
    const line = `${label.padEnd(7)} spawned directly ${direct.toFixed(0).padStart(5)}/s   as Sluice process tasks ${rate.toFixed(0).padStart(5)}/s (${((rate / direct) * 100).toFixed(0)}% of direct)`;
    log(line);
    results.push(line);
  }
  log("\n## summary");
  for (const r of results) log(r);
});
