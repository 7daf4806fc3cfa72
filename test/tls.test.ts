import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, Task } from "../runner/index.js";
import { type SluiceServer, buildServer } from "../server/build-server.js";
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

describe("a server with TLS", () => {
  let certs: Awaited<ReturnType<typeof makeCertificates>>;
  let server: SluiceServer;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    certs = await makeCertificates(await mkdtemp(join(tmpdir(), "sluice-tls-")));
    const db = await createDatabase();
    drop = db.drop;
    server = await buildServer({
      host: "127.0.0.1",
      port: 0,
      databaseUrl: db.url,
      auth: "required",
      adminToken: ADMIN,
      tls: { certFile: certs.cert, keyFile: certs.key },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await drop?.();
  });

  it("serves the SDK, buf curl and grpc-js over HTTP/2 with the test CA, and nobody who does not trust it", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(certs.ca);

    // The SDK: a job submitted and run over TLS.
    const client = new Client({ url: server.url, token: ADMIN, ca });
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
      certs.ca,
      "-H",
      `authorization: Bearer ${ADMIN}`,
      "--schema",
      join(ROOT, "proto"),
      `${server.url}/sluice.v1.ClusterService/ListClusters`,
    ]);
    expect(JSON.parse(stdout).clusters.map((c: { slug: string }) => c.slug)).toContain("default");

    // grpc-js, from the .proto files.
    const definition = protoLoader.loadSync(join(ROOT, "proto", "sluice", "v1", "job_service.proto"), { includeDirs: [join(ROOT, "proto")], defaults: true });
    // biome-ignore lint: a generic client has no static types
    const pkg = grpc.loadPackageDefinition(definition) as any;
    const jobs = new pkg.sluice.v1.JobService(new URL(server.url).host, grpc.credentials.createSsl(ca));
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${ADMIN}`);
    const got = await new Promise<{ job: { id: string; state: string } }>((resolve, reject) =>
      jobs.GetJob({ id: job.id }, metadata, (e: Error | null, res: { job: { id: string; state: string } }) => (e ? reject(e) : resolve(res))),
    );
    expect(got.job.id).toBe(job.id);
    jobs.close();

    // Without the CA, the certificate is refused and nothing is answered.
    const stranger = new Client({ url: server.url, token: ADMIN });
    await expect(stranger.jobs().get(job.id)).rejects.toThrow(/certificate/);
    stranger.close();
  });
});

describe("a server that asks for client certificates", () => {
  let certs: Awaited<ReturnType<typeof makeCertificates>>;
  let server: SluiceServer;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    certs = await makeCertificates(await mkdtemp(join(tmpdir(), "sluice-mtls-")));
    const db = await createDatabase();
    drop = db.drop;
    server = await buildServer({
      host: "127.0.0.1",
      port: 0,
      databaseUrl: db.url,
      tls: { certFile: certs.cert, keyFile: certs.key, clientCaFile: certs.ca },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await drop?.();
  });

  it("answers a client with a certificate its CA signed, and no other", async () => {
    const ca = await readFile(certs.ca);
    const withCert = new Client({ url: server.url, ca, clientCertificate: { cert: await readFile(certs.clientCert), key: await readFile(certs.clientKey) } });
    expect((await withCert.clusters().list()).map((c) => c.slug)).toContain("default");
    withCert.close();
    const without = new Client({ url: server.url, ca });
    await expect(without.clusters().list()).rejects.toThrow();
    without.close();
  });
});
