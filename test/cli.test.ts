import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Client } from "../runner/index.js";
import { type Child, FIXTURES, ROOT, jobInState, sluice, spawnNode } from "./support/harness.js";

const tour = (file: string) => join(FIXTURES, "tour", file);

/** `sluice server` on an embedded PostgreSQL, as `npm start` runs it. */
async function startServer(dataDir: string): Promise<Child & { url: string }> {
  const child = spawnNode([join(ROOT, "bin", "sluice.js"), "server", "--port", "0", "--data-dir", dataDir], { DATABASE_URL: "" });
  const [, url] = await child.waitFor(/listening on (http:\/\/\S+)/, 90_000);
  return Object.assign(child, { url });
}

describe("sluice server with an embedded PostgreSQL, the CLI and the tour", () => {
  let dataDir: string;
  const children: Child[] = [];
  afterAll(async () => {
    for (const c of children) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill("SIGKILL");
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("serves, runs the tour, stops cleanly on SIGTERM and keeps its data across a restart", async () => {
    dataDir = await mkdtemp(join(tmpdir(), "sluice-cli-"));
    // The embedded PostgreSQL runs as its own user when we are root: it must reach the folder.
    await chmod(dataDir, 0o755);
    const server = await startServer(dataDir);
    children.push(server);
    expect(server.stdout()).toContain("applied migrations: 0001_core.sql");
    const env = { SLUICE_URL: server.url };

    // Clusters.
    expect((await sluice(["clusters", "create", "gpu", "--display-name", "GPU machines"], env)).stdout).toContain("created cluster gpu");
    const clusters = await sluice(["clusters", "list"], env);
    expect(clusters.stdout).toMatch(/^default\s+Default$/m);
    expect(clusters.stdout).toMatch(/^gpu\s+GPU machines$/m);
    const badSlug = await sluice(["clusters", "create", "Not A Slug"], env);
    expect(badSlug.code).toBe(1);
    expect(badSlug.stderr).toMatch(/slug "Not A Slug" is invalid: use 1 to 63 lower-case letters/);

    // The tour: a job submitted from one process, run by a runner process, read back.
    const submitted = spawnNode([tour("submit.ts"), "world"], env);
    const [, jobId] = await submitted.waitFor(/submitted job (\d+)/);
    expect(await submitted.exited).toBe(0);
    const runner = spawnNode([tour("runner.ts")], env);
    children.push(runner);
    const client = new Client({ url: server.url });
    await jobInState(client, jobId, ["completed"], 30_000);
    await runner.waitFor(/Bonjour, world !/);
    expect(runner.stdout()).toContain("Hello, world!");
    runner.process.kill("SIGTERM");
    expect(await runner.exited).toBe(0);

    const shown = await sluice(["jobs", "show", jobId], env);
    expect(shown.stdout).toContain(`job ${jobId}: hello`);
    expect(shown.stdout).toContain("state      completed");
    expect(shown.stdout).toMatch(/task \d+ +computed +Hello v1\.0/);
    expect(shown.stdout).toMatch(/task \d+ +computed +Bonjour v1\.0/);

    // Submit, list, cancel and retry from the CLI; `sluice runner` runs task modules.
    const later = await sluice(["jobs", "submit", "from the cli", "--task", "Hello@v1.0", "--input", '{"who":"cli"}', "--json"], env);
    const laterJob = JSON.parse(later.stdout) as { id: string; state: string };
    expect(laterJob.state).toBe("queued");
    const listed = await sluice(["jobs", "list"], env);
    expect(listed.stdout).toMatch(new RegExp(`^\\s*${laterJob.id}\\s+queued\\s+default .* from the cli$`, "m"));
    expect((await sluice(["jobs", "cancel", laterJob.id], env)).stdout).toContain(`job ${laterJob.id} is cancelled`);
    expect((await sluice(["jobs", "retry", laterJob.id], env)).stdout).toContain(`job ${laterJob.id} is queued`);
    const cliRunner = await sluice(["runner", tour("hello.ts"), "--all", "--concurrency", "2"], env);
    expect(cliRunner.code).toBe(0);
    expect(cliRunner.stdout).toContain("Bonjour, cli !");
    expect((await client.jobs().get(laterJob.id)).state).toBe("completed");

    const missing = await sluice(["jobs", "show", "999999"], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("error: job 999999 does not exist (NotFound)");
    const badInput = await sluice(["jobs", "submit", "x", "--task", "Hello", "--input", "{nope"], env);
    expect(badInput.code).toBe(1);
    expect(badInput.stderr).toMatch(/--input is not JSON/);
    client.close();

    // SIGTERM: stops, exits 0.
    server.process.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toContain("stopped");

    // A second start reuses the data; SIGINT stops it too.
    const again = await startServer(dataDir);
    children.push(again);
    expect(again.stdout()).not.toContain("applied migrations");
    const relisted = await sluice(["jobs", "list", "--json"], { SLUICE_URL: again.url });
    expect((JSON.parse(relisted.stdout) as { id: string; state: string }[]).map((j) => `${j.id} ${j.state}`)).toEqual([
      `${laterJob.id} completed`,
      `${jobId} completed`,
    ]);
    again.process.kill("SIGINT");
    expect(await again.exited).toBe(0);
    // A dozen processes, each starting TypeScript: a loaded machine takes its time.
  }, 180_000);
});
