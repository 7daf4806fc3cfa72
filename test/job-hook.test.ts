import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Task, type TaskRunner } from "../runner/index.js";
import { FIXTURES, eventually, jobInState, quiet, sluice, useSandbox } from "./support/harness.js";

function named(name: string, version: string, input: object): Task {
  return new (class extends Task {
    static identifier = { name, version };
    execute() {
      throw new Error("process tasks run on the runner");
    }
  })(input as Record<string, unknown>);
}

const dir = mkdtempSync(join(tmpdir(), "sluice-hook-"));

interface Access {
  id: string;
  secret: string;
  hook: string;
}

function headers(a: { id: string; secret: string }, time = Date.now()): Record<string, string> {
  const t = String(time);
  return { "X-Job-Id": a.id, "X-Job-Time": t, "X-Job-Hash": createHmac("sha256", a.secret).update(t).digest("hex") };
}

/** A call as sent, path untouched (fetch would resolve ".."). */
function raw(url: string, method: string, h: Record<string, string>, body?: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const path = url.slice(u.origin.length);
    const req = request({ host: u.hostname, port: u.port, path, method, headers: { ...h, "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : null }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("the job hook", () => {
  const box = useSandbox({ dataDir: dir });
  let runner: TaskRunner;

  afterAll(async () => {
    await runner?.stop();
  });

  it("serves the seed's Python client unchanged: status, uploads stored once, downloads, subtasks", async () => {
    const after = join(dir, "after.json");
    runner = box.client.runner("default", {
      logger: quiet,
      concurrency: 2,
      processes: {
        "seed@v1.0": { command: ["python3", join(FIXTURES, "job-hook", "seed_task.py")], cwd: join(FIXTURES, "job-hook") },
        "after@v1.0": ["sh", "-c", `cat "$JOB_INPUT" > "${after}"`],
        "hold@v1.0": ["sh", "-c", `echo "$JOB_ID $JOB_SECRET_KEY $JOB_HOOK" > "${join(dir, "access")}"; while [ ! -f "${join(dir, "release")}" ]; do sleep 0.05; done`],
      },
    });
    void runner.runForever();
    const job = await box.client.jobs().submit("seed", named("seed", "v1.0", { name: "photo-1" }));
    await jobInState(box.client, job.id, ["completed", "failed"]);
    const details = await box.client.jobs().get(job.id);
    const [seed, child] = details.tasks;
    expect(seed.lastError).toBeUndefined();
    expect(details.state).toBe("completed");
    const out = seed.output!.stdout;
    expect(out).toContain('status answer: {"stored": true}');
    expect(out).toContain("sent after first upload: 1");
    // The second upload_to was answered done and sent no bytes.
    expect(out).toMatch(/Already uploaded\nsent after second upload: 1/);
    expect(out).toContain("download matches: True");
    expect(out).toMatch(/subtasks answer: 200 \{"indexes":\[0\]\}/);

    expect(seed.hookStatus?.value).toEqual({ progress: 50, message: "half way", task: "photo-1" });
    // The subtask posted to the hook was created with the completion, and ran.
    expect(child.identifier).toEqual({ name: "after", version: "v1.0" });
    expect(child.parentId).toBe(seed.id);
    expect(child.state).toBe("computed");
    expect(JSON.parse(readFileSync(after, "utf8"))).toEqual({ from: "photo-1" });

    // Stored once by hash, named twice.
    const files = await box.sql`SELECT idx, hash, metadata FROM job_files WHERE store = 'results' AND uuid = 'photo-1' ORDER BY idx`;
    expect(files.map((f) => f.idx)).toEqual([0, 1]);
    expect(files[0].hash).toBe(files[1].hash);
    expect(files[1].metadata).toEqual({ kind: "png", again: true });
    const [{ n }] = await box.sql`SELECT count(*)::int AS n FROM job_file_blobs`;
    expect(n).toBe(1);

    const shown = await sluice(["jobs", "show", job.id, "--url", box.url]);
    expect(shown.stdout).toMatch(/status \(.*\): \{.*"message":"half way".*\}/);
  });

  it("runs the README's Python task", async () => {
    const thumbs = box.client.runner("default", {
      logger: quiet,
      processes: { "thumbnail@v1.0": { command: "python3 thumbnail.py", cwd: join(FIXTURES, "tour"), env: { PYTHONPATH: join(FIXTURES, "job-hook") } } },
    });
    const job = await box.client.jobs().submit("thumbs", named("thumbnail", "v1.0", { image: "cat.jpg" }));
    await thumbs.runAll();
    await jobInState(box.client, job.id, ["completed"]);
    const [task] = (await box.client.jobs().get(job.id)).tasks;
    expect(task.hookStatus?.value).toEqual({ progress: 100, message: "done" });
    const [file] = await box.sql`SELECT f.metadata, b.size FROM job_files f JOIN job_file_blobs b USING (hash) WHERE store = 'thumbnails' AND uuid = 'cat.jpg' AND property = 'small'`;
    expect(file).toMatchObject({ metadata: { width: 128 }, size: "7" });
  });

  describe("with an attempt running", () => {
    let access: Access;
    let jobId: string;

    it("hands the attempt its hook", async () => {
      jobId = (await box.client.jobs().submit("hold", named("hold", "v1.0", {}))).id;
      const line = await eventually(() => existsSync(join(dir, "access")) && readFileSync(join(dir, "access"), "utf8").trim());
      const [id, secret, hook] = line.split(" ");
      access = { id, secret, hook };
      expect(hook).toBe(`${box.url}/job-hook`);
      const ok = await raw(`${hook}/status`, "POST", headers(access), JSON.stringify({ step: 1 }));
      expect(ok).toEqual({ status: 200, json: { stored: true } });
    });

    const statusOf = async () => (await box.client.jobs().get(jobId)).tasks[0].hookStatus?.value;

    it("refuses a wrong hash, an old time and an unknown job with 401, changing nothing", async () => {
      const body = JSON.stringify({ step: "forged" });
      const wrong = await raw(`${access.hook}/status`, "POST", { ...headers(access), "X-Job-Hash": "0".repeat(64) }, body);
      expect(wrong.status).toBe(401);
      expect(wrong.json.error).toMatch(/X-Job-Hash does not match/);

      const old = await raw(`${access.hook}/status`, "POST", headers(access, Date.now() - 10 * 60_000), body);
      expect(old.status).toBe(401);
      expect(old.json.error).toMatch(/X-Job-Time is -600 s off/);

      const otherAttempt = await raw(`${access.hook}/status`, "POST", headers({ id: `${access.id.split(".")[0]}.7`, secret: access.secret }), body);
      expect(otherAttempt.status).toBe(401);

      const unknown = await raw(`${access.hook}/status`, "POST", headers({ id: "not-a-job", secret: access.secret }), body);
      expect(unknown.status).toBe(401);
      expect(unknown.json.error).toMatch(/unknown job "not-a-job"/);

      const missing = await raw(`${access.hook}/status`, "POST", {}, body);
      expect(missing.status).toBe(401);

      expect(await statusOf()).toEqual({ step: 1 });
      const sub = await raw(`${access.hook}/subtasks`, "POST", { ...headers(access), "X-Job-Hash": "f".repeat(64) }, JSON.stringify({ tasks: [{ identifier: { name: "after", version: "v1.0" }, inputJson: {} }] }));
      expect(sub.status).toBe(401);
      const [{ n }] = await box.sql`SELECT count(*)::int AS n FROM task_hook_subtasks WHERE task_id = ${access.id.split(".")[0]}`;
      expect(n).toBe(0);
    });

    it("refuses path segments with .. or separators with 400", async () => {
      const meta = JSON.stringify({ hash: "0".repeat(32), challenge: "0".repeat(32), metadata: {} });
      for (const path of ["/upload/../x/y", "/upload/results/..%2Fetc/y", "/upload/a%2Fb/x/y", "/download/results/x/..%5C../0"]) {
        const res = await raw(`${access.hook}${path}`, path.startsWith("/upload") ? "PUT" : "GET", headers(access), path.startsWith("/upload") ? meta : undefined);
        expect(res.status, path).toBe(400);
        expect(res.json.error).toMatch(/without "\.\."/);
      }
      const [{ n }] = await box.sql`SELECT count(*)::int AS n FROM job_file_uploads`;
      expect(n).toBe(0);
    });

    it("refuses bytes that do not match the announced hashes, keeping nothing", async () => {
      const announce = await raw(`${access.hook}/upload/results/mismatch/data`, "PUT", headers(access), JSON.stringify({ hash: "a".repeat(32), challenge: "b".repeat(32) }));
      expect(announce.json.done).toBe(false);
      const put = await fetch(announce.json.url, { method: "PUT", body: "not those bytes" });
      expect(put.status).toBe(400);
      const rows = await box.sql`SELECT 1 FROM job_files WHERE uuid = 'mismatch'`;
      expect(rows.length).toBe(0);
      // The URL was good for one upload only.
      expect((await fetch(announce.json.url, { method: "PUT", body: "x" })).status).toBe(404);
    });

    it("refuses every call once the attempt has ended", async () => {
      writeFileSync(join(dir, "release"), "");
      await jobInState(box.client, jobId, ["completed"]);
      const late = await raw(`${access.hook}/status`, "POST", headers(access), JSON.stringify({ step: "late" }));
      expect(late.status).toBe(401);
      expect(late.json.error).toMatch(/has ended: task \d+ is computed/);
      expect(await statusOf()).toEqual({ step: 1 });
    });
  });
});
