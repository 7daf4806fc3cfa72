/**
 * Storage events, from object write to task start, against a real `sluice
 * server` process, fauxqs (S3 + SQS) and the GCS test server of the test suite
 * (those two in a child process of their own, bench/lib-extra/emulators.ts).
 *
 * For each source, N objects (200; --quick 50), one written every 20 ms:
 *   fs       a file written into a folder the server watches
 *   s3-http  PutObject to fauxqs, then the S3 event notification POSTed to /events/s3/ID
 *   s3-sqs   PutObject to fauxqs, then the S3 event notification sent to an SQS queue the server long-polls
 *   gcs      an upload through the GCS test server's JSON API, then the Pub/Sub push POSTed to /events/gcs/ID
 * and fs-sparse: 20 files (--quick 10), one every 250 ms, into the watched folder
 * (@parcel/watcher delivers after 50 ms of quiet, or every 500 ms while events keep coming).
 * Latency = the task's started_at (database clock, set when a runner leases it)
 * minus the moment the write began (this process's clock; same machine).
 *
 * Then a burst: B files (10,000; --quick 2,000) written as fast as possible
 * into another watched folder; every file must start exactly one job.
 *
 * One runner in this process (concurrency 32) runs a no-op StorageEventTask.
 *
 * npm run bench:storage [-- --quick] [--objects N] [--burst B] [--only fs,fs-sparse,s3-http,s3-sqs,gcs,burst]
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { SQSClient, SendMessageCommand } from "@aws-sdk/client-sqs";
import { Storage } from "@google-cloud/storage";
import { interceptLocalhostDns } from "fauxqs";
import postgres, { type Sql } from "postgres";
import { Client, type StorageLocation } from "../runner/index.js";
import { Databases, ROOT, inParallel, log, main, ms, option, printHeader, quick, sleep, startEmulators, startServer, summarize } from "./lib-extra/common.js";
import { BenchStorageNoop, quietLogger } from "./lib-extra/tasks.js";

const OBJECTS = Number(option("objects") ?? (quick ? 50 : 200));
const BURST = Number(option("burst") ?? (quick ? 2_000 : 10_000));
const EVERY_MS = 20;
const SPARSE = quick ? 10 : 20;
const SPARSE_EVERY_MS = 250;
const CONCURRENCY = 32;
const BURST_IN_FLIGHT = 64;
const only = option("only")?.split(",");
const wanted = (name: string) => !only || only.includes(name);

const credentials = { accessKeyId: "test", secretAccessKey: "test" };
const REGION = "us-east-1";
const results: string[] = [];

interface Source {
  name: string;
  /** Objects to write, one every `everyMs`. */
  count: number;
  everyMs: number;
  location: StorageLocation;
  /** Writes the object and sends its notification, if the source needs one. */
  write(key: string, body: Buffer): Promise<void>;
}

/** Tasks of a recurrent task's jobs: key and started_at (epoch ms), and job state. */
async function tasksOf(sql: Sql, recurrentTaskId: string) {
  return sql<{ key: string; created: number; started: number | null; finished: number | null; state: string; job_id: string }[]>`
    SELECT t.trigger->>'key' AS key, (extract(epoch FROM t.created_at) * 1000)::float8 AS created,
           (extract(epoch FROM t.started_at) * 1000)::float8 AS started,
           (extract(epoch FROM j.finished_at) * 1000)::float8 AS finished, j.state::text AS state, j.id::text AS job_id
    FROM jobs j JOIN tasks t ON t.job_id = j.id
    WHERE j.recurrent_task_id = ${recurrentTaskId}`;
}

await main(async (cleanup) => {
  await printHeader("Sluice benchmark: storage events, object write to task start");
  const dbs = new Databases();
  cleanup(() => dbs.dropAll());
  const db = await dbs.create("storage");

  // fauxqs and the GCS test server in a process of their own (not sharing this
  // process's event loop with the runner and the writers). The queue's URL is
  // on sqs.REGION.localhost: this process and the server (through
  // bench/lib-extra/localhost-dns.ts) resolve *.localhost to 127.0.0.1.
  const emulators = await startEmulators(["bench-push", "bench-sqs", "bench-gcs"], ["bench-events"]);
  cleanup(() => emulators.stop());
  const restoreDns = interceptLocalhostDns();
  cleanup(() => restoreDns?.());
  const s3Endpoint = emulators.s3;
  const queueUrl = emulators.queues["bench-events"];
  const s3 = new S3Client({ endpoint: s3Endpoint, region: REGION, forcePathStyle: true, credentials });
  cleanup(() => s3.destroy());
  const sqs = new SQSClient({ endpoint: s3Endpoint, region: REGION, credentials });
  cleanup(() => sqs.destroy());
  const gcsBucket = new Storage({ apiEndpoint: emulators.gcs, projectId: "bench-project", useAuthWithCustomEndpoint: false }).bucket("bench-gcs");

  const folder = await mkdtemp(join(tmpdir(), "sluice-bench-watched-"));
  const burstFolder = await mkdtemp(join(tmpdir(), "sluice-bench-burst-"));
  cleanup(() => rm(folder, { recursive: true, force: true }));
  cleanup(() => rm(burstFolder, { recursive: true, force: true }));

  cleanup(() => dbs.drop(db.name));
  const server = await startServer(db.url, {
    SLUICE_GCS_ENDPOINT: emulators.gcs,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_REGION: REGION,
  }, ["--import", "tsx", "--import", join(ROOT, "bench", "lib-extra", "localhost-dns.ts")]);
  cleanup(() => server.stop());
  const client = new Client({ url: server.url });
  cleanup(() => client.close());
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  cleanup(() => sql.end({ timeout: 5 }));
  const recurrent = client.recurrentTasks();

  const runner = client.runner("default", { tasks: [BenchStorageNoop], concurrency: CONCURRENCY, logger: quietLogger });
  const running = runner.runForever();
  cleanup(async () => {
    await runner.stop();
    await running.catch(() => {});
  });

  const post = async (location: StorageLocation, body: unknown) => {
    const res = await fetch(`${server.url}${location.pushPath}?token=${location.pushToken}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (res.status !== 200) throw new Error(`push to ${location.pushPath} answered ${res.status}: ${await res.text()}`);
  };
  const s3Event = (bucket: string, key: string, eTag: string, size: number) => ({
    Records: [
      {
        eventVersion: "2.1",
        eventSource: "aws:s3",
        awsRegion: REGION,
        eventTime: new Date().toISOString(),
        eventName: "ObjectCreated:Put",
        s3: { s3SchemaVersion: "1.0", bucket: { name: bucket }, object: { key: encodeURIComponent(key), eTag: eTag.replace(/"/g, ""), size, sequencer: Date.now().toString(16) } },
      },
    ],
  });

  const sources: Source[] = [];
  if (wanted("fs") || wanted("fs-sparse")) {
    const location = await recurrent.registerStorageLocation({ type: "fs", location: folder, reconcileIntervalSeconds: 0 });
    const write = (key: string, body: Buffer) => writeFile(join(folder, key), body);
    sources.push({ name: "fs", count: OBJECTS, everyMs: EVERY_MS, location, write });
    // @parcel/watcher hands events over after 50 ms without any, or every 500 ms
    // while they keep coming: files far apart show the floor of this source.
    sources.push({ name: "fs-sparse", count: SPARSE, everyMs: SPARSE_EVERY_MS, location, write });
  }
  if (wanted("s3-http")) {
    const location = await recurrent.registerStorageLocation({ type: "s3", location: "bench-push", endpoint: s3Endpoint, region: REGION, reconcileIntervalSeconds: 0 });
    sources.push({
      name: "s3-http",
      count: OBJECTS,
      everyMs: EVERY_MS,
      location,
      write: async (key, body) => {
        const put = await s3.send(new PutObjectCommand({ Bucket: "bench-push", Key: key, Body: body }));
        await post(location, s3Event("bench-push", key, put.ETag ?? key, body.length));
      },
    });
  }
  if (wanted("s3-sqs")) {
    const location = await recurrent.registerStorageLocation({
      type: "s3",
      location: "bench-sqs",
      endpoint: s3Endpoint,
      region: REGION,
      sqsQueueUrl: queueUrl,
      reconcileIntervalSeconds: 0,
    });
    sources.push({
      name: "s3-sqs",
      count: OBJECTS,
      everyMs: EVERY_MS,
      location,
      write: async (key, body) => {
        const put = await s3.send(new PutObjectCommand({ Bucket: "bench-sqs", Key: key, Body: body }));
        await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(s3Event("bench-sqs", key, put.ETag ?? key, body.length)) }));
      },
    });
  }
  if (wanted("gcs")) {
    const location = await recurrent.registerStorageLocation({ type: "gcs", location: "bench-project:bench-gcs", reconcileIntervalSeconds: 0 });
    sources.push({
      name: "gcs",
      count: OBJECTS,
      everyMs: EVERY_MS,
      location,
      write: async (key, body) => {
        const file = gcsBucket.file(key);
        await file.save(body, { resumable: false });
        const generation = String(file.metadata.generation);
        await post(location, {
          message: {
            attributes: { eventType: "OBJECT_FINALIZE", bucketId: "bench-gcs", objectId: key, objectGeneration: generation, payloadFormat: "JSON_API_V1" },
            data: Buffer.from(JSON.stringify({ name: key, bucket: "bench-gcs", generation, metageneration: "1", size: String(body.length), updated: new Date().toISOString() })).toString("base64"),
            messageId: `${key}-${generation}`,
            publishTime: new Date().toISOString(),
          },
          subscription: "projects/bench-project/subscriptions/sluice",
        });
      },
    });
  }
  // The servers pick up new locations (watchers, SQS pollers) on a NOTIFY: give them a moment.
  await sleep(1_000);

  const body = Buffer.alloc(1024, "x");
  for (const source of sources.filter((x) => wanted(x.name))) {
    log(`\n## ${source.name}: ${source.count} objects, one every ${source.everyMs} ms`);
    const task = await recurrent.createRecurringStorageEventTask(`bench-${source.name}`, "default", new BenchStorageNoop({ source: source.name }), {
      triggers: [[source.location, "**"]],
    });
    // A few objects first, not measured, so that connections and code paths are warm.
    await Promise.all(Array.from({ length: 3 }, (_, i) => source.write(`warm-${source.name}-${i}.txt`, body)));
    await sleep(500);

    const writtenAt = new Map<string, number>();
    const writes: Promise<void>[] = [];
    let errors = 0;
    let firstError = "";
    const t0 = Date.now();
    for (let i = 0; i < source.count; i++) {
      const wait = t0 + i * source.everyMs - Date.now();
      if (wait > 0) await sleep(wait);
      const key = `${source.name}-${String(i).padStart(5, "0")}.txt`;
      writtenAt.set(key, Date.now());
      writes.push(
        source.write(key, body).catch((e) => {
          errors++;
          firstError ||= String(e);
        }),
      );
    }
    await Promise.all(writes);
    const expected = source.count + 3;
    const deadline = Date.now() + 30_000;
    let rows = await tasksOf(sql, task.id);
    while (rows.filter((r) => r.started !== null).length < expected && Date.now() < deadline) {
      await sleep(200);
      rows = await tasksOf(sql, task.id);
    }
    const latencies: number[] = [];
    const toJob: number[] = [];
    const toLease: number[] = [];
    const seen = new Map<string, number>();
    for (const r of rows) {
      seen.set(r.key, (seen.get(r.key) ?? 0) + 1);
      const at = writtenAt.get(r.key);
      if (at !== undefined && r.started !== null) {
        latencies.push(r.started - at);
        toJob.push(r.created - at);
        toLease.push(r.started - r.created);
      }
    }
    const missing = [...writtenAt.keys()].filter((k) => !seen.has(k)).length;
    const duplicates = [...seen.values()].reduce((a, n) => a + n - 1, 0);
    const s = summarize(latencies);
    const j = summarize(toJob);
    const l = summarize(toLease);
    log(`write -> task started: p50 ${ms(s.p50)} ms, p99 ${ms(s.p99)} ms, max ${ms(s.max)} ms over ${s.n}; missing ${missing}, duplicate jobs ${duplicates}, write errors ${errors}${firstError ? ` (${firstError})` : ""}`);
    log(`  write -> job created: p50 ${ms(j.p50)} ms, p99 ${ms(j.p99)} ms; job created -> task leased: p50 ${ms(l.p50)} ms, p99 ${ms(l.p99)} ms`);
    results.push(
      `storage-${source.name}: p50 ${ms(s.p50)} ms, p99 ${ms(s.p99)} ms, max ${ms(s.max)} ms, missing ${missing}, duplicates ${duplicates} (${source.count} objects, one every ${source.everyMs} ms)`,
    );
    // Its jobs stay; no more start for this source's location.
    await recurrent.delete(task);
  }

  if (wanted("burst")) {
    log(`\n## burst: ${BURST} files written as fast as possible (${BURST_IN_FLIGHT} writes in flight) into a watched folder`);
    const location = await recurrent.registerStorageLocation({ type: "fs", location: burstFolder, reconcileIntervalSeconds: 0 });
    await sleep(1_000);
    const task = await recurrent.createRecurringStorageEventTask("bench-burst", "default", new BenchStorageNoop({ source: "burst" }), {
      triggers: [[location, "**"]],
    });
    const keys = Array.from({ length: BURST }, (_, i) => `burst-${String(i).padStart(6, "0")}.dat`);
    const t0 = Date.now();
    await inParallel(keys, BURST_IN_FLIGHT, async (key) => {
      await writeFile(join(burstFolder, key), body);
    });
    const writeMs = Date.now() - t0;
    log(`wrote ${BURST} files in ${(writeMs / 1000).toFixed(2)} s`);
    // Until every file has a completed job, or nothing has moved for 15 s.
    let last = -1;
    let lastChange = Date.now();
    let lastLog = Date.now();
    for (;;) {
      const [row] = await sql<{ jobs: number; completed: number }[]>`
        SELECT count(*)::int AS jobs, count(*) FILTER (WHERE state = 'completed')::int AS completed
        FROM jobs WHERE recurrent_task_id = ${task.id}`;
      if (row.completed >= BURST && row.completed === row.jobs) break;
      if (row.completed !== last) {
        last = row.completed;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > 15_000) {
        log(`no progress for 15 s: ${row.jobs} jobs, ${row.completed} completed`);
        break;
      }
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        log(`  ${((Date.now() - t0) / 1000).toFixed(0)} s: ${row.jobs} jobs, ${row.completed} completed`);
      }
      await sleep(100);
    }
    // Late repeats (a second event for the same file) would land now.
    await sleep(3_000);
    const rows = await tasksOf(sql, task.id);
    const perKey = new Map<string, number>();
    let lastFinished = 0;
    for (const r of rows) {
      perKey.set(r.key, (perKey.get(r.key) ?? 0) + 1);
      if (r.finished !== null) lastFinished = Math.max(lastFinished, r.finished);
    }
    const [events] = await sql<{ n: number; keys: number }[]>`
      SELECT count(*)::int AS n, count(DISTINCT e.key)::int AS keys
      FROM storage_events e JOIN storage_triggers t ON t.id = e.trigger_id WHERE t.recurrent_task_id = ${task.id}`;
    const missing = keys.filter((k) => !perKey.has(k)).length;
    const duplicates = [...perKey.values()].reduce((a, n) => a + n - 1, 0);
    const notCompleted = rows.filter((r) => r.state !== "completed").length;
    const lastMs = lastFinished - t0;
    log(`${rows.length} jobs for ${perKey.size} files, ${events.n} storage_events for ${events.keys} keys; missing ${missing}, duplicates ${duplicates}, not completed ${notCompleted}`);
    log(`last job completed ${(lastMs / 1000).toFixed(2)} s after the first write (${Math.round((BURST * 1000) / lastMs)} files/s end to end)`);
    results.push(
      `storage-burst: ${BURST} files -> ${rows.length} jobs (${events.n} storage_events), missing ${missing}, duplicates ${duplicates}; last job completed ${(lastMs / 1000).toFixed(2)} s after the first write (writes took ${(writeMs / 1000).toFixed(2)} s)`,
    );
  }

  log("");
  for (const line of results) log(line);
});
