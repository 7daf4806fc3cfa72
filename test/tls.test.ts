import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import * as http2 from "node:http2";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, Task } from "../runner/index.js";
import { type SluiceServer, buildServer } from "../server/build-server.js";
import type { ServerConfig } from "../server/config.js";
import { listenTls } from "../server/http/listen-tls.js";
import { ConnectionLimitsDefaults } from "../server/limits.js";
import { ROOT, createDatabase, quiet } from "./support/harness.js";

const run = promisify(execFile);
const ADMIN = "tls-test-admin-secret";

class Echo extends Task<{ n: number }> {
  static identifier = { name: "Echo", version: "v1.0" };
  execute() {}
}

/** A test CA, and a server and a client certificate it signed, made with openssl. */
async function makeCertificates(dir: string) {
  const ssl = (...args: string[]) => run("openssl", args, { cwd: dir });
  await ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Sluice test CA");
  await writeFile(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const name of ["server", "client"]) {
    await ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=sluice ${name}`);
    await ssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", "san.ext");
  }
  const file = (f: string) => join(dir, f);
  return { ca: file("ca.pem"), cert: file("server.pem"), key: file("server.key"), clientCert: file("client.pem"), clientKey: file("client.key") };
}

type Certificates = Awaited<ReturnType<typeof makeCertificates>>;

let made: Promise<Certificates> | undefined;
/** The file's certificates, made once. */
function certificates(): Promise<Certificates> {
  made ??= mkdtemp(join(tmpdir(), "sluice-tls-")).then(makeCertificates);
  return made;
}

/**
 * A server on a database of its own, with certificates made for it; the
 * returned object is filled in before the file's tests run.
 */
function useTlsServer(config: (certs: Certificates) => Partial<ServerConfig>) {
  const box = {} as { certs: Certificates; server: SluiceServer };
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    box.certs = await certificates();
    const db = await createDatabase();
    drop = db.drop;
    box.server = await buildServer({ host: "127.0.0.1", port: 0, databaseUrl: db.url, ...config(box.certs) });
  });
  afterAll(async () => {
    await box.server?.stop();
    await drop?.();
  });
  return box;
}

describe("a server with TLS", () => {
  const box = useTlsServer((certs) => ({ auth: "required", adminToken: ADMIN, tls: { certFile: certs.cert, keyFile: certs.key } }));

  it("serves the SDK, buf curl and grpc-js over HTTP/2 with the test CA, and nobody who does not trust it", async () => {
    expect(box.server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(box.certs.ca);

    // The SDK: a job submitted and run over TLS.
    const client = new Client({ url: box.server.url, token: ADMIN, ca });
    const job = await client.jobs().submit("over tls", new Echo({ n: 1 }));
    await client.runner("default", { tasks: [Echo], logger: quiet }).runAll();
    expect((await client.jobs().get(job.id)).state).toBe("completed");
    client.close();

    // buf curl, with gRPC over HTTP/2 and the CA.
    const { stdout } = await run(join(ROOT, "node_modules", ".bin", "buf"), [
      "curl",
      "--protocol",
      "grpc",
      "--cacert",
      box.certs.ca,
      "-H",
      `authorization: Bearer ${ADMIN}`,
      "--schema",
      join(ROOT, "proto"),
      `${box.server.url}/sluice.v1.ClusterService/ListClusters`,
    ]);
    expect(JSON.parse(stdout).clusters.map((c: { slug: string }) => c.slug)).toContain("default");

    // grpc-js, from the .proto files.
    const definition = protoLoader.loadSync(join(ROOT, "proto", "sluice", "v1", "job_service.proto"), { includeDirs: [join(ROOT, "proto")], defaults: true });
    // biome-ignore lint: a generic client has no static types
    const pkg = grpc.loadPackageDefinition(definition) as any;
    const jobs = new pkg.sluice.v1.JobService(new URL(box.server.url).host, grpc.credentials.createSsl(ca));
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${ADMIN}`);
    const got = await new Promise<{ job: { id: string; state: string } }>((resolve, reject) =>
      jobs.GetJob({ id: job.id }, metadata, (e: Error | null, res: { job: { id: string; state: string } }) => (e ? reject(e) : resolve(res))),
    );
    expect(got.job.id).toBe(job.id);
    jobs.close();

    // Without the CA, the certificate is refused and nothing is answered.
    const stranger = new Client({ url: box.server.url, token: ADMIN });
    await expect(stranger.jobs().get(job.id)).rejects.toThrow(/certificate/);
    stranger.close();
  });
});

describe("a server that asks for client certificates", () => {
  const box = useTlsServer((certs) => ({ tls: { certFile: certs.cert, keyFile: certs.key, clientCaFile: certs.ca } }));

  it("answers a client with a certificate its CA signed, and no other", async () => {
    const ca = await readFile(box.certs.ca);
    const withCert = new Client({ url: box.server.url, ca, clientCertificate: { cert: await readFile(box.certs.clientCert), key: await readFile(box.certs.clientKey) } });
    expect((await withCert.clusters().list()).map((c) => c.slug)).toContain("default");
    withCert.close();
    const without = new Client({ url: box.server.url, ca });
    await expect(without.clusters().list()).rejects.toThrow();
    without.close();
  });
});

describe("a TLS listener closing", () => {
  it("closes idle keep-alive HTTP/1.1 and HTTP/2 connections at once, without waiting out the grace period", async () => {
    const certs = await certificates();
    const listener = await listenTls((_req, res) => res.end("ok"), "127.0.0.1", 0, ConnectionLimitsDefaults, { certFile: certs.cert, keyFile: certs.key });
    const url = `https://127.0.0.1:${listener.port}`;
    const ca = await readFile(certs.ca);
    // A client that keeps its HTTP/1.1 connection open between requests, as browsers do.
    const agent = new https.Agent({ keepAlive: true, ca });
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(`${url}/`, { agent }, (res) => {
          let text = "";
          res.on("data", (d) => (text += d));
          res.on("end", () => resolve(text));
        })
        .on("error", reject);
    });
    expect(body).toBe("ok");
    const [kept] = Object.values(agent.freeSockets).flat();
    expect(kept).toBeDefined();
    const h1Closed = new Promise((resolve) => kept!.once("close", resolve));
    const h2 = http2.connect(url, { ca });
    h2.on("error", () => {});
    await new Promise<void>((resolve) => h2.request({ ":path": "/" }).on("end", resolve).resume());
    const h2Closed = new Promise((resolve) => h2.once("close", resolve));

    // A grace period longer than the test may take: only closing the idle connections lets this finish.
    await listener.close(10 * 60_000);
    await Promise.all([h1Closed, h2Closed]);
    agent.destroy();
  });
});
