import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskRunner } from "../runner/index.js";
import { FIXTURES, ROOT, eventually, jobInState, quiet, spawnNode, useSandbox } from "./support/harness.js";
import { KubeTestServer } from "./support/kube-server.js";
import { alive, named } from "./support/process-tasks.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-kube-"));

// A process task calling the job hook with the seed's client, from the Job's pod.
const statusScript = `import json, os, sys
sys.path.insert(0, ${JSON.stringify(join(FIXTURES, "job-hook"))})
from job import send_status
send_status({"from": "pod", "input": json.loads(os.environ["JOB_INPUT_JSON"])})
`;

describe("process tasks as Kubernetes Jobs", () => {
  const box = useSandbox({ dataDir: dir });
  const kube = new KubeTestServer();
  let runner: TaskRunner;

  beforeAll(async () => {
    await kube.start();
  });
  afterAll(async () => {
    await runner?.stop();
    await kube.stop();
  });

  it("creates a Job per task attempt, with its variables, labels and time to live, and completes the task when it succeeds", async () => {
    runner = box.client.runner("default", {
      logger: quiet,
      concurrency: 4,
      prefetch: 0,
      kubernetes: { kubeConfig: kube.kubeConfig("work"), image: "python:3.12-slim", serviceAccountName: "sluice-tasks", ttlSecondsAfterFinished: 600 },
      processes: {
        "status@v1.0": { command: ["python3", "-c", statusScript], resources: { limits: { cpu: "1" } } },
        "fail@v1.0": ["sh", "-c", "echo 'no space left on device' >&2; exit 4"],
        "sleep@v1.0": ["sh", "-c", `echo $$ > "${join(dir, "sleep.pid")}"; exec sleep 1000`],
      },
    });
    void runner.runForever();
    const job = await box.client.jobs().submit("status", named("status", "v1.0", { photo: 7 }));
    await jobInState(box.client, job.id, ["completed"]);
    const [task] = (await box.client.jobs().get(job.id)).tasks;
    // The pod reached the job hook.
    expect(task.hookStatus?.value).toEqual({ from: "pod", input: { photo: 7 } });

    const name = `sluice-task-${task.id}-1`;
    const created = kube.job("work", name)!;
    expect(created.metadata?.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "sluice",
      "sluice.dev/runner": runner.id,
      "sluice.dev/job": job.id,
      "sluice.dev/task": task.id,
      "sluice.dev/attempt": "1",
    });
    expect(created.spec?.ttlSecondsAfterFinished).toBe(600);
    expect(created.spec?.backoffLimit).toBe(0);
    const pod = created.spec!.template.spec!;
    expect(pod.serviceAccountName).toBe("sluice-tasks");
    expect(pod.containers[0].image).toBe("python:3.12-slim");
    expect(pod.containers[0].resources).toEqual({ limits: { cpu: "1" } });
    const env = Object.fromEntries(pod.containers[0].env!.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ JOB_ID: `${task.id}.1`, JOB_HOOK: `${box.url}/job-hook`, JOB_INPUT_JSON: '{"photo":7}' });
    expect(env.JOB_SECRET_KEY).toMatch(/^[0-9a-f]{64}$/);
  });

  it("fails the task when its Job fails", async () => {
    const job = await box.client.jobs().submit("fail", named("fail", "v1.0", {}));
    await jobInState(box.client, job.id, ["failed"]);
    const [task] = (await box.client.jobs().get(job.id)).tasks;
    // With the end of its pod's log.
    expect(task.lastError?.message).toBe(
      `Kubernetes Job sluice-task-${task.id}-1 failed (BackoffLimitExceeded: Job has reached the specified backoff limit): no space left on device`,
    );
    expect(task.output?.stdout).toBe("no space left on device\n");
  });

  it("deletes the Job when its job is cancelled", async () => {
    const job = await box.client.jobs().submit("sleep", named("sleep", "v1.0", {}));
    const pid = await eventually(() => existsSync(join(dir, "sleep.pid")) && Number(readFileSync(join(dir, "sleep.pid"), "utf8")));
    const [task] = (await box.client.jobs().get(job.id)).tasks;
    expect(kube.job("work", `sluice-task-${task.id}-1`)).toBeDefined();
    await box.client.jobs().cancel(job.id);
    await eventually(() => kube.deleted.includes(`sluice-task-${task.id}-1`), 20_000, "the Job to be deleted");
    expect(kube.job("work", `sluice-task-${task.id}-1`)).toBeUndefined();
    await eventually(() => !alive(pid), 20_000, "the Job's process to end");
    await eventually(() => runner.inFlight === 0, 20_000, "the runner to forget the task");
  });

  it("adopts the Jobs of the tasks it holds after a restart instead of starting them again", async () => {
    await runner.stop();
    const kubeconfig = kube.writeKubeConfig(join(dir, "kubeconfig"), "work");
    const starts = join(dir, "starts");
    const release = join(dir, "release");
    const runnerId = randomUUID();
    const args = [
      join(ROOT, "bin", "sluice.js"),
      "runner",
      "--url",
      box.url,
      "--runner-id",
      runnerId,
      "--kubernetes",
      "--kube-image",
      "busybox",
      "--process",
      `hold@v1.0=sh -c 'echo started >> "${starts}"; while [ ! -f "${release}" ]; do sleep 0.05; done'`,
    ];
    const first = spawnNode(args, { KUBECONFIG: kubeconfig });
    const job = await box.client.jobs().submit("hold", named("hold", "v1.0", {}));
    await eventually(() => existsSync(starts), 60_000, "the Job to start");
    const [task] = (await box.client.jobs().get(job.id)).tasks;
    const name = `sluice-task-${task.id}-1`;
    // The runner dies without a word; its Job runs on.
    first.process.kill("SIGKILL");
    await first.exited;

    const second = spawnNode(args, { KUBECONFIG: kubeconfig });
    try {
      await eventually(() => kube.creates.filter((c) => c.name === name).length === 2, 60_000, "the restarted runner to try the Job again");
      writeFileSync(release, "");
      await jobInState(box.client, job.id, ["completed"], 60_000);
      // One Job, created once: the second create failed safely and the Job was adopted.
      expect(kube.creates.filter((c) => c.name === name).map((c) => c.status)).toEqual([201, 409]);
      expect(readFileSync(starts, "utf8")).toBe("started\n");
      const [after] = (await box.client.jobs().get(job.id)).tasks;
      expect(after.attempts).toBe(1);
    } finally {
      second.process.kill("SIGTERM");
      await second.exited;
    }
  }, 150_000);
});
