import { connect } from "node:http2";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { SQSClient, SendMessageCommand } from "@aws-sdk/client-sqs";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { type FauxqsServer, interceptLocalhostDns, startFauxqs } from "fauxqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, type StorageLocation } from "../runner/index.js";
import { type SluiceServer, buildServer } from "../server/build-server.js";
import { isJsonText } from "../server/json-text.js";
import { ROOT, createDatabase, eventually, sluice, useSandbox } from "./support/harness.js";

// The server's S3 and SQS clients take credentials from the environment, as in production.
process.env.AWS_ACCESS_KEY_ID = "test";
process.env.AWS_SECRET_ACCESS_KEY = "test";

/** A task submission as a JSON client writes it. */
const task = (fields: object = {}) => ({ identifier: { name: "Noop", version: "v1.0" }, input: btoa("{}"), ...fields });

/** What a refusal must look like: InvalidArgument, with a message saying what to fix. */
const invalidArgument = (message: RegExp) => ({ status: 400, body: { code: "invalid_argument", message: expect.stringMatching(message) } });

describe("bad input is refused as InvalidArgument, naming the field", () => {
  const box = useSandbox();

  /** A Connect unary call with a JSON body, as curl makes it. */
  async function postJson(method: string, body: unknown): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${box.url}/sluice.v1.${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }

  /** A POST over cleartext HTTP/2, as gRPC clients send it: the response's body and trailers. */
  async function h2Post(path: string, contentType: string, body: Uint8Array): Promise<{ body: Uint8Array; trailers: Record<string, unknown> }> {
    const session = connect(box.url);
    try {
      return await new Promise((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
        const chunks: Buffer[] = [];
        let trailers: Record<string, unknown> = {};
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("trailers", (t) => (trailers = t));
        stream.on("end", () => resolve({ body: new Uint8Array(Buffer.concat(chunks)), trailers }));
        stream.on("error", reject);
        stream.end(body);
      });
    } finally {
      session.close();
    }
  }

  /** A message as gRPC and Connect streams frame it. */
  const frame = (flags: number, data: Uint8Array) => {
    const out = new Uint8Array(5 + data.length);
    out[0] = flags;
    new DataView(out.buffer).setUint32(1, data.length);
    out.set(data, 5);
    return out;
  };
  const randomBytes = new Uint8Array([0xff, 0x07, 0x00, 0x13, 0x37, 0xfe, 0x01]);

  /** Nothing was written by a refused call. */
  const jobCount = async () => (await box.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM jobs`)[0].n;

  it("a NUL character in a task name", async () => {
    const before = await jobCount();
    const res = await postJson("JobService/SubmitJob", { name: "j", tasks: [task(), task({ identifier: { name: "No\u0000op", version: "v1.0" } })] });
    expect(res).toEqual(invalidArgument(/^tasks\[1\]\.identifier\.name contains a NUL character \(U\+0000\), which cannot be stored; remove it$/));
    expect(await jobCount()).toBe(before);
  });

  it("a NUL character in a job's cluster", async () => {
    const res = await postJson("JobService/SubmitJob", { name: "j", cluster: "de\u0000fault", tasks: [task()] });
    expect(res).toEqual(invalidArgument(/^cluster contains a NUL character/));
  });

  it("a NUL character in a task's cluster", async () => {
    const res = await postJson("JobService/SubmitJob", { name: "j", tasks: [task({ cluster: "\u0000" })] });
    expect(res).toEqual(invalidArgument(/^tasks\[0\]\.cluster contains a NUL character/));
  });

  it("a NUL character in one job of a batch refuses that job alone", async () => {
    const res = await postJson("JobService/SubmitJobs", { jobs: [{ name: "fine", tasks: [task()] }, { name: "j", tasks: [task({ cluster: "x\u0000" })] }] });
    expect(res.status).toBe(200);
    const [ok, refused] = (res.body as { results: { job?: { name: string }; refused?: { code: string; message: string } }[] }).results;
    expect(ok.job?.name).toBe("fine");
    expect(refused.refused).toEqual({ code: "invalid_argument", message: expect.stringMatching(/^tasks\[0\]\.cluster contains a NUL character/) });
  });

  it("a NUL character in ListJobs name", async () => {
    expect(await postJson("JobService/ListJobs", { name: "a\u0000b" })).toEqual(invalidArgument(/^name contains a NUL character/));
  });

  it("a NUL character in ListJobs cluster", async () => {
    expect(await postJson("JobService/ListJobs", { cluster: "\u0000" })).toEqual(invalidArgument(/^cluster contains a NUL character/));
  });

  it("a NUL character in a cluster's display name", async () => {
    const res = await postJson("ClusterService/CreateCluster", { slug: "named", displayName: "Named\u0000" });
    expect(res).toEqual(invalidArgument(/^display_name contains a NUL character/));
    expect(await postJson("ClusterService/GetCluster", { slug: "named" })).toMatchObject({ status: 404 });
  });

  it("a NUL character in a recurrent task's id", async () => {
    for (const method of ["GetRecurrentTask", "PauseRecurrentTask", "ResumeRecurrentTask", "DeleteRecurrentTask"]) {
      expect(await postJson(`RecurrentTaskService/${method}`, { idOrName: "7\u0000" })).toEqual(invalidArgument(/^id_or_name contains a NUL character/));
    }
  });

  it("an unpaired surrogate, which is not Unicode", async () => {
    // JSON.stringify writes a lone surrogate as the escape "\udc00".
    const res = await postJson("JobService/SubmitJob", { name: "j", tasks: [task({ display: "half \udc00 of a pair" })] });
    expect(res).toEqual(invalidArgument(/sluice\.v1\.TaskSubmission\.display from JSON: .*invalid UTF8/));
  });

  it("a binary protobuf body of random bytes (Connect)", async () => {
    const res = await fetch(`${box.url}/sluice.v1.JobService/SubmitJob`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: randomBytes,
    });
    expect({ status: res.status, body: await res.json() }).toEqual(
      invalidArgument(/^the request is not a valid sluice\.v1\.SubmitJobRequest in the protobuf binary format \(.+\)/),
    );
  });

  it("a binary protobuf body of random bytes (gRPC)", async () => {
    const { trailers } = await h2Post("/sluice.v1.JobService/SubmitJob", "application/grpc", frame(0, randomBytes));
    expect(trailers["grpc-status"]).toBe("3");
    expect(trailers["grpc-message"]).toMatch(/^the request is not a valid sluice\.v1\.SubmitJobRequest in the protobuf binary format/);
  });

  it("a binary protobuf body of random bytes (a Connect stream, gRPC-web)", async () => {
    /** The last envelope of a response body, as text. */
    const lastEnvelope = (body: Uint8Array) => {
      let at = 0;
      let last: Uint8Array = new Uint8Array();
      while (at < body.length) {
        const length = new DataView(body.buffer, body.byteOffset + at).getUint32(1);
        last = body.subarray(at + 5, at + 5 + length);
        at += 5 + length;
      }
      return new TextDecoder().decode(last);
    };
    const stream = await h2Post("/sluice.v1.JobService/SubmitStream", "application/connect+proto", frame(0, randomBytes));
    const end = JSON.parse(lastEnvelope(stream.body));
    expect(end.error).toEqual({ code: "invalid_argument", message: expect.stringMatching(/^the request is not a valid sluice\.v1\.SubmitJobsRequest/) });

    const web = await fetch(`${box.url}/sluice.v1.JobService/SubmitJob`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: frame(0, randomBytes),
    });
    const trailer = lastEnvelope(new Uint8Array(await web.arrayBuffer()));
    expect(trailer).toMatch(/grpc-status: 3\r\n/);
    expect(trailer).toMatch(/grpc-message: the request is not a valid sluice\.v1\.SubmitJobRequest/);
  });

  it("a JSON request with an unknown field", async () => {
    const res = await postJson("JobService/ListJobs", { stat: ["JOB_STATE_FAILED"] });
    expect(res).toEqual(invalidArgument(/stat/));
  });

  it("a JSON request with an unknown enum value", async () => {
    const res = await postJson("JobService/ListJobs", { states: ["FOO"] });
    expect(res).toEqual(invalidArgument(/FOO/));
    expect(await postJson("JobService/ListJobs", { states: ["JOB_STATE_FAILED"] })).toMatchObject({ status: 200 });
  });

  it("task input that is not JSON", async () => {
    const before = await jobCount();
    const res = await postJson("JobService/SubmitJob", { name: "j", tasks: [task(), task({ input: btoa("{nope") })] });
    expect(res).toEqual(invalidArgument(/^tasks, task 1: input is not JSON \(.+\); a task's input is its fields as JSON in UTF-8, e\.g\. \{"who":"world"\}$/));
    // JSON text must be UTF-8: a byte that is not is refused, not replaced.
    const latin1 = Buffer.from('{"name":"caf\xe9"}', "latin1").toString("base64");
    expect(await postJson("JobService/SubmitJob", { name: "j", tasks: [task({ input: latin1 })] })).toEqual(invalidArgument(/^tasks, task 0: input is not JSON/));
    const both = await postJson("JobService/SubmitJob", { name: "j", tasks: [task({ inputJson: {} })] });
    expect(both).toEqual(invalidArgument(/^tasks, task 0: input and input_json are both set/));
    expect(await jobCount()).toBe(before);
  });

  it("input is JSON exactly when JSON.parse takes it", () => {
    const texts = [
      '{"a":[1,2,{"b":null}],"c":"x\\"y\\u00e9","d":-0.5e+10,"e":true,"f":false}', " [ ] ", "{}", "0", "-0.0e-0", '"\\ud800"', '"\u2028"',
      "[1,]", '{"a":1,}', "01", "1.", "-", ".5", "1e", '{"a" 1}', "[[[[]]]]", "[[[[]]]", "true false", "tru", "nul", "{,}", "[,1]",
      '{"a":1 "b":2}', '"\\x"', '"\\u12g4"', '"tab\there"', "'single'", "NaN", "Infinity", "\ufeff{}", "{}\u0000", "",
    ];
    const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    const parses = (b: Uint8Array) => {
      try {
        JSON.parse(utf8.decode(b));
        return true;
      } catch {
        return false;
      }
    };
    const bytes = [...texts.map((t) => new TextEncoder().encode(t)), new Uint8Array([0x22, 0xff, 0x22]), new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22])];
    expect(bytes.map(isJsonText)).toEqual(bytes.map(parses));
    expect(bytes.filter(isJsonText).length).toBeGreaterThan(5);
  });

  it("a JSON client submits and reads a task's input as JSON", async () => {
    const inputJson = { who: "world", n: 3, tags: ["a", "b"], nested: { ok: true, none: null } };
    const submitted = await postJson("JobService/SubmitJob", { name: "json", tasks: [{ identifier: { name: "Noop", version: "v1.0" }, inputJson }] });
    expect(submitted.status).toBe(200);
    const id = (submitted.body as { job: { id: string } }).job.id;
    const read = await postJson("JobService/GetJob", { id });
    const [stored] = (read.body as { tasks: { input: string; inputJson: unknown }[] }).tasks;
    expect(stored.inputJson).toEqual(inputJson);
    // Stored as the bytes an SDK reads: the same value as JSON.
    expect(JSON.parse(Buffer.from(stored.input, "base64").toString("utf8"))).toEqual(inputJson);
    // Input sent as bytes reads back as JSON too.
    const asBytes = await postJson("JobService/SubmitJob", { name: "bytes", tasks: [task({ input: btoa('{"who":"bytes"}') })] });
    const again = await postJson("JobService/GetJob", { id: (asBytes.body as { job: { id: string } }).job.id });
    expect((again.body as { tasks: { inputJson: unknown }[] }).tasks[0].inputJson).toEqual({ who: "bytes" });
  });

  it("a gRPC error message reaches grpc-js readable, commas and colons intact", async () => {
    const definition = loadSync("sluice/v1/job_service.proto", { includeDirs: [join(ROOT, "proto")] });
    const sluice = grpc.loadPackageDefinition(definition).sluice as any;
    const jobs = new sluice.v1.JobService(new URL(box.url).host, grpc.credentials.createInsecure());
    try {
      const error = await new Promise<grpc.ServiceError>((resolve, reject) =>
        jobs.submitJob({ name: "j", tasks: [{ identifier: { name: "Noop", version: "1.0" }, input: Buffer.from("{}") }] }, (e: grpc.ServiceError | null) =>
          e ? resolve(e) : reject(new Error("the bad version was accepted")),
        ),
      );
      expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error.details).toBe('tasks, task 0: version "1.0" of task "Noop" is invalid: use "vMAJOR.MINOR", e.g. "v1.0"');
    } finally {
      jobs.close();
    }
  });
});

describe("storage events and the command line refuse bad input, saying what is wrong", () => {
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let server: SluiceServer;
  let client: Client;
  let fauxqs: FauxqsServer;
  let location: StorageLocation;
  let restoreDns: (() => void) | undefined;
  const logged: string[] = [];

  beforeAll(async () => {
    db = await createDatabase();
    fauxqs = await startFauxqs({ port: 0, logger: false });
    // fauxqs names queues on sqs.REGION.localhost: resolve *.localhost in this process, as it advises.
    restoreDns = interceptLocalhostDns();
    const s3 = new S3Client({ endpoint: `http://127.0.0.1:${fauxqs.port}`, region: "us-east-1", forcePathStyle: true });
    for (const bucket of ["inbox", "queued"]) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    s3.destroy();
    const logger = { info() {}, error: (message: string, e?: unknown) => logged.push(`${message}: ${(e as Error)?.message ?? ""}`) };
    server = await buildServer({ host: "127.0.0.1", port: 0, databaseUrl: db.url }, logger);
    client = new Client({ url: server.url });
    location = await client.recurrentTasks().registerStorageLocation({ type: "s3", location: "inbox", endpoint: `http://127.0.0.1:${fauxqs.port}`, reconcileIntervalSeconds: 0 });
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
    await fauxqs?.stop();
    restoreDns?.();
    await db?.drop();
  });

  /** An S3 event notification for one object. */
  const s3Event = (object: object, fields: object = {}) => ({
    Records: [{ eventName: "ObjectCreated:Put", eventTime: "2026-12-04T10:00:00.000Z", s3: { bucket: { name: "inbox" }, object: { eTag: "e1", ...object } }, ...fields }],
  });
  async function push(event: object): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${server.url}/events/s3/${location.id}?token=${location.pushToken}`, { method: "POST", body: JSON.stringify(event) });
    return { status: res.status, body: await res.json() };
  }

  it("an S3 webhook key with malformed percent-encoding", async () => {
    expect(await push(s3Event({ key: "%E0%A4%A" }))).toEqual({
      status: 400,
      body: { error: expect.stringMatching(/^Records\[0\]\.s3\.object\.key "%E0%A4%A" is not a key as S3 encodes them/) },
    });
  });

  it("an S3 webhook key with a NUL character", async () => {
    expect(await push(s3Event({ key: "a%00b" }))).toEqual({
      status: 400,
      body: { error: expect.stringMatching(/^Records\[0\]\.s3\.object\.key contains a NUL character/) },
    });
    expect(await push(s3Event({ key: "fine.txt" }))).toEqual({ status: 200, body: { objects: 1, jobsSubmitted: 0 } });
  });

  it("an S3 eventTime that is not a time", async () => {
    expect(await push(s3Event({ key: "a.txt" }, { eventTime: "not a date" }))).toEqual({
      status: 400,
      body: { error: 'Records[0].eventTime "not a date" is not a time; use ISO 8601, e.g. "2026-12-04T10:00:00.000Z"' },
    });
  });

  it("an S3 event from an SQS queue that cannot be read is logged and dropped", async () => {
    const { queueUrl } = fauxqs.createQueue("inbox-events");
    await s3Location("queued", queueUrl);
    const sqs = new SQSClient({ endpoint: `http://127.0.0.1:${fauxqs.port}`, region: "us-east-1" });
    try {
      await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(s3Event({}, { s3: { bucket: { name: "queued" }, object: { key: "a%00b", eTag: "e1" } } })) }));
      await eventually(() => logged.some((l) => /dropped an unreadable message .* Records\[0\]\.s3\.object\.key contains a NUL/.test(l)), 20_000, "the drop logged");
      await eventually(() => {
        const q = fauxqs.inspectQueue("inbox-events")!;
        return q.messages.ready.length + q.messages.inflight.length === 0;
      }, 20_000, "the message deleted");
    } finally {
      sqs.destroy();
    }
  });

  /** Registers a bucket with an SQS queue for its events. */
  const s3Location = (bucket: string, sqsQueueUrl: string) =>
    client.recurrentTasks().registerStorageLocation({ type: "s3", location: bucket, endpoint: `http://127.0.0.1:${fauxqs.port}`, sqsQueueUrl, reconcileIntervalSeconds: 0 });

  it("an S3 location whose SQS queue the server cannot reach", async () => {
    const refusal = async (queueUrl: string) => (await s3Location("queued", queueUrl).then(() => undefined, ConnectError.from))!;
    const unresolvable = await refusal("http://sqs.us-east-1.no-such-host.invalid/000000000000/events");
    expect(Code[unresolvable.code]).toBe("FailedPrecondition");
    expect(unresolvable.rawMessage).toMatch(/^the server cannot reach SQS queue http:\/\/sqs\.us-east-1\.no-such-host\.invalid\/000000000000\/events: .*ENOTFOUND/);
    const missing = await refusal(`http://sqs.us-east-1.localhost:${fauxqs.port}/000000000000/no-such-queue`);
    expect(Code[missing.code]).toBe("FailedPrecondition");
    expect(missing.rawMessage).toMatch(/no-such-queue: /);
    const notUrl = await refusal("events");
    expect(Code[notUrl.code]).toBe("InvalidArgument");
    expect(notUrl.rawMessage).toMatch(/sqs_queue_url "events" is not an http\(s\) URL/);
    expect((await client.recurrentTasks().storageLocations()).map((l) => l.sqsQueueUrl)).not.toContain("events");
  });

  it("sluice jobs list --state bogus lists the states", async () => {
    const { code, stderr } = await sluice(["jobs", "list", "--state", "bogus"], { SLUICE_URL: server.url });
    expect(code).toBe(1);
    expect(stderr).toMatch(/argument 'bogus' is invalid\. Allowed choices are scheduled, queued, started, completed, failed, cancelled/);
  });
});
