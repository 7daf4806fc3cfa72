/**
 * How many process tasks one runner starts per second, against a real
 * `sluice server` process. A process start is the floor, so the same commands
 * are first spawned N times straight from Node (child_process.spawn, detached,
 * stdin/stdout/stderr piped, as the runner does), at the same concurrency,
 * with no Sluice involved.
 *
 * Then N jobs (N = 2,000, python 300; --quick 300 and 60) of one process task
 * each, submitted beforehand (JobService.SubmitJobs, 500 per call), are drained
 * by one runner (concurrency C, in this process): tasks/s = N / (runner start
 * -> runAll() resolved, every result recorded). Both are done in 3 alternated
 * rounds of N/3, since this machine's speed drifts; medians are reported.
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

const COMMANDS: { label: string; command: string[]; tasks: number }[] = [
  { label: "true", command: ["true"], tasks: TASKS },
  { label: "echo", command: ["sh", "-c", 'echo "$JOB_ID"'], tasks: TASKS },
  {
    label: "python",
    // Importing requests alone takes about 0.3 s of CPU.
    tasks: Math.min(TASKS, quick ? 60 : 300),
    command: ["python3", "-c", `import sys; sys.path.insert(0, ${JSON.stringify(join(ROOT, "test", "fixtures", "job-hook"))}); from job import send_status; send_status({"progress": 100})`],
  },
];

/** N spawns of `command`, `CONCURRENCY` at a time, each waited for to exit: the floor. */
async function spawnFloor(command: string[], tasks: number): Promise<number> {
  const t = performance.now();
  await inParallel(Array.from({ length: tasks }), CONCURRENCY, async () => {
    const child = spawn(command[0], command.slice(1), { detached: true, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, JOB_ID: "1.1", JOB_SECRET_KEY: "x", JOB_HOOK: "http://127.0.0.1:1" } });
    child.stdin.on("error", () => {});
    child.stdin.end(INPUT);
    child.stdout.resume();
    child.stderr.resume();
    await new Promise((resolve) => child.once("close", resolve));
  });
  return (tasks * 1000) / (performance.now() - t);
}

const ROUNDS = 3;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

await main(async (cleanup) => {
  await printHeader("Process tasks started per second by one runner");
  log(`runner concurrency ${CONCURRENCY}, prefetch ${CONCURRENCY}; ${ROUNDS} rounds of spawning directly then draining as Sluice tasks, alternated (medians)`);
  const dbs = new Databases();
  const results: string[] = [];
  for (const { label, command, tasks } of COMMANDS) {
    if (only && only !== label) continue;
    const db = await dbs.create(`procs_${label}`);
    cleanup(() => dbs.drop(db.name));
    const server = await startServer(db.url);
    const client = new Client({ url: server.url });
    const api = createClient(JobService, client.transport);
    const identifier = { name: `bench-${label}`, version: "v1.0" };
    const perRound = Math.ceil(tasks / ROUNDS);
    const direct: number[] = [];
    const sluice: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < perRound; i += 500) {
        const n = Math.min(500, perRound - i);
        await api.submitJobs({ jobs: Array.from({ length: n }, () => ({ name: "bench", cluster: "default", tasks: [{ identifier, input: INPUT, dependsOn: [] }] })) });
      }
      // Spawned directly, the python command's hook call is refused at once (no server at JOB_HOOK).
      direct.push(await spawnFloor(command, perRound));
      const runner = client.runner("default", { logger: quietLogger, concurrency: CONCURRENCY, processes: { [`bench-${label}@v1.0`]: command } });
      const t = performance.now();
      await runner.runAll();
      sluice.push((perRound * 1000) / (performance.now() - t));
    }
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const [{ computed }] = await sql<{ computed: number }[]>`SELECT count(*)::int AS computed FROM tasks WHERE state = 'computed'`;
    await sql.end({ timeout: 5 });
    client.close();
    await server.stop();
    if (computed !== perRound * ROUNDS) throw new Error(`${label}: ${computed} of ${perRound * ROUNDS} tasks computed`);
    const d = median(direct);
    const r = median(sluice);
    const line = `${label.padEnd(7)} ${String(perRound * ROUNDS).padStart(5)} tasks: spawned directly ${d.toFixed(0).padStart(5)}/s   as Sluice process tasks ${r.toFixed(0).padStart(5)}/s (${((r / d) * 100).toFixed(0)}% of direct; rounds ${sluice.map((x) => x.toFixed(0)).join(", ")} vs ${direct.map((x) => x.toFixed(0)).join(", ")})`;
    log(line);
    results.push(line);
  }
  log("\n## summary");
  for (const r of results) log(r);
});
