/**
 * fauxqs (S3, SQS) and the test suite's GCS JSON API server in a process of
 * their own, so that a benchmark's clients and the stores they talk to do not
 * share one event loop. Creates the buckets named in argv[2] (comma-separated)
 * in both, and the SQS queues named in argv[3], and prints one JSON line:
 * {"s3": "http://127.0.0.1:PORT", "gcs": "http://127.0.0.1:PORT", "pid": PID, "queues": {NAME: URL}}.
 * Stops when its stdin closes (the parent went away) or on SIGTERM.
 */
import { startFauxqs } from "fauxqs";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { startGcsServer } from "../../test/support/gcs-server.js";

const buckets = (process.argv[2] ?? "bench-cache").split(",").filter(Boolean);
const queueNames = (process.argv[3] ?? "").split(",").filter(Boolean);
const fauxqs = await startFauxqs({ port: 0, logger: false });
const s3Url = `http://127.0.0.1:${fauxqs.port}`;
const s3 = new S3Client({ endpoint: s3Url, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
const gcs = await startGcsServer();
for (const bucket of buckets) {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  gcs.createBucket(bucket);
}
s3.destroy();
const queues: Record<string, string> = {};
for (const name of queueNames) queues[name] = fauxqs.createQueue(name).queueUrl;

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await Promise.allSettled([fauxqs.stop(), gcs.close()]);
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
process.stdin.on("end", () => void stop());
process.stdin.on("close", () => void stop());
process.stdin.resume();
console.log(JSON.stringify({ s3: s3Url, gcs: gcs.url, pid: process.pid, queues }));
