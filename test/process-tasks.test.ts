import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Client, TaskRunner } from "../runner/index.js";
import { splitCommand } from "../runner/worker/process-task.js";
import { FIXTURES, eventually, jobInState, quiet, sluice, spawnNode, useSandbox } from "./support/harness.js";
import { alive, named } from "./support/process-tasks.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-procs-"));

// Each starts a child of its own (which a plain kill of the parent would
// leave running), writes both pids to the file named by $PIDS, and waits to be ended.
const blockScript = join(dir, "block.sh");
writeFileSync(blockScript, `sleep 1000 &\necho "$$ $!" > "$PIDS"\nwait\n`);
const blockNode = join(dir, "block.mjs");
writeFileSync(
  blockNode,
  `import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
const child = spawn("sleep", ["1000"], { stdio: "ignore" });
writeFileSync(process.env.PIDS, process.pid + " " + child.pid);
setInterval(() => {}, 1000);
`,
);

const nodeScript = join(dir, "greet.mjs");
writeFileSync(
  nodeScript,
  `import { readFileSync } from "node:fs";
const input = JSON.parse(readFileSync(process.env.JOB_INPUT, "utf8"));
if (input.fail) { console.error("no greeting for " + input.who); process.exit(3); }
let stdin = ""; for await (const c of process.stdin) stdin += c;
console.log("hello " + input.who + " from " + process.env.JOB_ID + " stdin=" + stdin);
`,
);

describe("process tasks", () => {
  // Short leases, extended every second: a lost lease is noticed soon.
  const box = useSandbox({ dataDir: dir, leaseTtlMs: 3_000 });
  let runner: TaskRunner;
  let client: Client;

  afterAll(async () => {
    await runner?.stop();
  });

  it("runs shell and Node commands with the job's variables and input, and keeps their output", async () => {
    client = box.client;
    runner = client.runner("default", {
      logger: quiet,
      concurrency: 4,
      prefetch: 0,
      processes: {
        "shell@v1.0": { command: ["sh", "-c", 'echo "id=$JOB_ID hook=$JOB_HOOK key=${#JOB_SECRET_KEY} input=$(cat "$JOB_INPUT")"; echo warming up >&2'] },
        "greet@v1.2": `node ${nodeScript}`,
        "shell-fail@v1.0": ["sh", "-c", "echo working; echo 'disk full' >&2; exit 2"],
        "slow@v1.0": { command: "sleep 30", timeoutMs: 500, killGraceMs: 500 },
        "node-slow@v1.0": { command: ["node", "-e", "setTimeout(() => {}, 30000)"], timeoutMs: 500, killGraceMs: 500 },
        "block@v1.0": { command: ["sh", blockScript], env: { PIDS: join(dir, "block.pids") }, killGraceMs: 1_000 },
        "node-block@v1.0": { command: ["node", blockNode], env: { PIDS: join(dir, "node-block.pids") }, killGraceMs: 1_000 },
      },
    });
    void runner.runForever();
    const shell = await client.jobs().submit("shell", named("shell", "v1.0", { n: 1 }));
    const greet = await client.jobs().submit("greet", named("greet", "v1.1", { who: "Ada" }));
    await jobInState(client, shell.id, ["completed"]);
    await jobInState(client, greet.id, ["completed"]);

    const [s] = (await client.jobs().get(shell.id)).tasks;
    expect(s.output?.stdout).toBe(`id=${s.id}.1 hook=${box.url}/job-hook key=64 input={"n":1}\n`);
    expect(s.output?.stderr).toBe("warming up\n");
    const [g] = (await client.jobs().get(greet.id)).tasks;
    expect(g.output?.stdout).toBe(`hello Ada from ${g.id}.1 stdin={"who":"Ada"}\n`);
  });

  it("fails a task whose command exits with another code, with its standard error, and retries it", async () => {
    const job = await client.jobs().submit("greet fails", named("greet", "v1.0", { who: "Bob", fail: true }), { maxRetries: 1 });
    await jobInState(client, job.id, ["failed"]);
    const [t] = (await client.jobs().get(job.id)).tasks;
    expect(t.failures).toBe(2);
    expect(t.lastError?.message).toBe("the process exited with code 3: no greeting for Bob");
    expect(t.output?.stderr).toBe("no greeting for Bob\n");
  });

  it("fails a shell task with its standard error", async () => {
    const job = await client.jobs().submit("shell fails", named("shell-fail", "v1.0", {}));
    await jobInState(client, job.id, ["failed"]);
    const [t] = (await client.jobs().get(job.id)).tasks;
    expect(t.lastError?.message).toBe("the process exited with code 2: disk full");
    expect(t.lastError?.stack).toBe("stdout:\nworking\n\nstderr:\ndisk full\n");
  });

  it.each(["slow", "node-slow"])("fails a task that runs past its time limit (%s)", async (name) => {
    const job = await client.jobs().submit(name, named(name, "v1.0", {}));
    await jobInState(client, job.id, ["failed"]);
    const [t] = (await client.jobs().get(job.id)).tasks;
    expect(t.lastError?.message).toBe("the process timed out after 500 ms");
  });

  it.each(["block", "node-block"])("ends a cancelled job's process and everything it started (%s)", async (name) => {
    const pidFile = join(dir, `${name}.pids`);
    const job = await client.jobs().submit(name, named(name, "v1.0", {}));
    const pids = await eventually(() => {
      try {
        const text = readFileSync(pidFile, "utf8").trim().split(" ").map(Number);
        return text.length === 2 && text.every((p) => p > 0) ? text : undefined;
      } catch {
        return undefined;
      }
    });
    expect(pids.every(alive)).toBe(true);
    await client.jobs().cancel(job.id);
    await eventually(() => pids.every((p) => !alive(p)), 20_000, "the process and its child to end");
    await eventually(() => runner.inFlight === 0, 20_000, "the runner to forget the task");
    expect((await client.jobs().get(job.id)).state).toBe("cancelled");
  });

  it("ends the process of a task whose lease was lost", async () => {
    const pidFile = join(dir, "block.pids");
    rmSync(pidFile, { force: true });
    const job = await client.jobs().submit("lost", named("block", "v1.0", {}));
    const pids = await eventually(() => {
      const p = existsSync(pidFile) ? readFileSync(pidFile, "utf8").trim().split(" ").map(Number) : [];
      return p.length === 2 && p.every((x) => x > 0) ? p : undefined;
    });
    const [t] = (await client.jobs().get(job.id)).tasks;
    // As if the lease had expired and the task had gone to another runner.
    await box.sql`UPDATE tasks SET lease = lease + 1 WHERE id = ${t.id}`;
    await eventually(() => pids.every((p) => !alive(p)), 20_000, "the process and its child to end");
    await client.jobs().cancel(job.id);
    await eventually(() => runner.inFlight === 0, 20_000, "the runner to forget the task");
  });

  it("ends what a finished process left running in the background", async () => {
    const file = join(dir, "orphan");
    const orphanRunner = client.runner("default", { logger: quiet, processes: { "orphan@v1.0": ["sh", "-c", `sleep 1000 & echo $! > "${file}"`] } });
    const job = await client.jobs().submit("orphan", named("orphan", "v1.0", {}));
    await orphanRunner.runAll();
    await jobInState(client, job.id, ["completed"]);
    const pid = Number(readFileSync(file, "utf8"));
    expect(pid).toBeGreaterThan(0);
    await eventually(() => !alive(pid), 20_000, "the background process to end");
  });

  it("ends the processes of its tasks when the runner's own process exits", async () => {
    const pidFile = join(dir, "exiting.pids");
    const job = await client.jobs().submit("exiting", named("exiting", "v1.0", {}));
    const child = spawnNode([join(FIXTURES, "exiting-process-runner.ts")], { SLUICE_URL: box.url, PIDS: pidFile });
    expect(await child.exited).toBe(0);
    const pids = readFileSync(pidFile, "utf8").trim().split(" ").map(Number);
    expect(pids.length).toBe(2);
    await eventually(() => pids.every((p) => !alive(p)), 20_000, "the process and its child to end");
    await client.jobs().cancel(job.id);
  });

  it("takes process tasks from the command line, split as a shell would", async () => {
    const job = await client.jobs().submit("cli", named("cli-echo", "v1.0", {}));
    const slow = await client.jobs().submit("cli slow", named("cli-slow", "v1.0", {}));
    const out = join(dir, "cli out.txt");
    const res = await sluice([
      "runner",
      "--all",
      "--url",
      box.url,
      "--concurrency",
      "2",
      "--process",
      `cli-echo@v1.0=sh -c 'echo "$JOB_ID" > "$0"' '${out}'`,
      "--process",
      "cli-slow@v1.0=sleep 60",
      "--process-timeout",
      "1",
    ]);
    expect(res.stderr).toContain("cli-echo@v1.0");
    expect(res.code).toBe(0);
    await jobInState(client, job.id, ["completed"]);
    const [t] = (await client.jobs().get(job.id)).tasks;
    expect(readFileSync(out, "utf8")).toBe(`${t.id}.1\n`);
    await jobInState(client, slow.id, ["failed"]);
    expect((await client.jobs().get(slow.id)).tasks[0].lastError?.message).toBe("the process timed out after 1000 ms");

    const bad = await sluice(["runner", "--url", box.url, "--process", "x@v1.0=cat *.txt | wc -l"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("needs a shell");
  });

  it("splits command lines like a shell, without one", () => {
    expect(splitCommand(`python3 "my script.py" --name='a b' \\$HOME $X`, { X: "x" })).toEqual(["python3", "my script.py", "--name=a b", "$HOME", "x"]);
    expect(() => splitCommand("a && b")).toThrow(/operator &&.*needs a shell/);
    expect(() => splitCommand("  ")).toThrow(/empty/);
  });
});
