import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { type FauxqsServer, startFauxqs } from "fauxqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Task } from "../runner/index.js";
import { FIXTURES, jobInState, quiet, useSandbox } from "./support/harness.js";

process.env.AWS_ACCESS_KEY_ID ??= "test";
process.env.AWS_SECRET_ACCESS_KEY ??= "test";

function named(name: string, version: string, input: object): Task {
  return new (class extends Task {
    static identifier = { name, version };
    execute() {
      throw new Error("process tasks run on the runner");
    }
  })(input as Record<string, unknown>);
}

describe("job files in an S3 storage location", () => {
  let fauxqs: FauxqsServer;
  let s3: S3Client;
  beforeAll(async () => {
    fauxqs = await startFauxqs({ port: 0, logger: false });
    s3 = new S3Client({ endpoint: `http://127.0.0.1:${fauxqs.port}`, region: "us-east-1", forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: "job-files" }));
  });
  afterAll(async () => {
    s3?.destroy();
    await fauxqs?.stop();
  });
  // The first location registered below.
  const box = useSandbox({ dataDir: mkdtempSync(join(tmpdir(), "sluice-s3-files-")), jobFilesLocation: "1" });

  it("keeps uploads in the bucket and hands out presigned download URLs, for the seed's client unchanged", async () => {
    const location = await box.client.recurrentTasks().registerStorageLocation({ type: "s3", location: "job-files", endpoint: `http://127.0.0.1:${fauxqs.port}` });
    expect(location.id).toBe("1");
    const runner = box.client.runner("default", {
      logger: quiet,
      processes: {
        "seed@v1.0": { command: ["python3", join(FIXTURES, "job-hook", "seed_task.py")], cwd: join(FIXTURES, "job-hook") },
        "after@v1.0": ["true"],
      },
    });
    const job = await box.client.jobs().submit("seed", named("seed", "v1.0", { name: "scan-9" }));
    await runner.runAll();
    await jobInState(box.client, job.id, ["completed"]);
    const [seed] = (await box.client.jobs().get(job.id)).tasks;
    expect(seed.output?.stdout).toMatch(/Already uploaded\nsent after second upload: 1/);
    expect(seed.output?.stdout).toContain("download matches: True");

    const [file] = await box.sql`SELECT hash FROM job_files WHERE store = 'results' AND uuid = 'scan-9' AND idx = 0`;
    const object = await s3.send(new GetObjectCommand({ Bucket: "job-files", Key: `job-files/${file.hash}` }));
    const bytes = await object.Body!.transformToByteArray();
    expect(Buffer.from(bytes).subarray(-"scan-9".length).toString()).toBe("scan-9");
    expect(bytes.length).toBe(200_000 + "scan-9".length);
  });
});
