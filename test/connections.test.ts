import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { JobService } from "../gen/sluice/v1/job_service_pb.js";
import { Client, Task } from "../runner/index.js";
import { type SluiceServer, buildServer } from "../server/build-server.js";
import { listen } from "../server/http/listen.js";
import { type Child, createDatabase, serverProcess } from "./support/harness.js";

class Noop extends Task<{ i: number }> {
  static identifier = { name: "Noop", version: "v1.0" };
  execute() {}
}

const MAX_REQUEST_BYTES = 256 * 1024;
const MAX_CONNECTIONS = 6;

/** Resolves when `emitter` emits `event`, or fails after `timeoutMs`. */
function eventWithin(emitter: NodeJS.EventEmitter, event: string, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    emitter.once(event, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function connectSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

describe("connection limits", () => {
  let server: SluiceServer;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const db = await createDatabase();
    drop = db.drop;
    server = await buildServer({
      host: "127.0.0.1",
      port: 0,
      databaseUrl: db.url,
      connections: { firstBytesTimeoutMs: 300, idleTimeoutMs: 1_000, maxConnections: MAX_CONNECTIONS, maxStreamsPerConnection: 250, tcpKeepAliveMs: 60_000 },
      requests: { maxRequestBytes: MAX_REQUEST_BYTES, maxConcurrentRequests: 64 },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await drop?.();
  });

  it("closes connections that never send their first bytes, and keeps answering", async () => {
    // More than the connection cap: each must be closed, or the later ones could not get in.
    const sockets = await Promise.all(Array.from({ length: MAX_CONNECTIONS * 2 }, () => connectSocket(server.port)));
    const closed = sockets.map((s) => eventWithin(s, "close", 10_000, "a one-byte connection to be closed"));
    for (const s of sockets) s.write("P");
    await Promise.all(closed);

    const client = new Client({ url: server.url });
    try {
      expect(await client.jobs().list()).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("closes an HTTP/2 connection with no stream once idle, but not one whose stream is in progress", async () => {
    // B: a long-lived stream (as a runner's work stream is).
    const sessionsB = new Http2SessionManager(server.url);
    const healthB = createClient(Health, createGrpcTransport({ baseUrl: server.url, sessionManager: sessionsB }));
    const watch = new AbortController();
    let watchEnded = false;
    let firstAnswer!: () => void;
    const answered = new Promise<void>((r) => (firstAnswer = r));
    const watching = (async () => {
      try {
        for await (const _ of healthB.watch({ service: "" }, { signal: watch.signal })) firstAnswer();
      } catch {
        // Aborted at the end of the test.
      } finally {
        watchEnded = true;
      }
    })();
    await answered;

    // A: a connection that has had no stream, opened after B's stream started.
    const a = http2.connect(server.url);
    a.on("error", () => {});
    await eventWithin(a, "close", 10_000, "the idle HTTP/2 connection to be closed");

    expect(watchEnded).toBe(false);
    expect((await healthB.check({ service: "" })).status).toBeDefined();
    watch.abort();
    await watching;
    sessionsB.abort();
  });

  it("refuses connections beyond the cap while those open keep working", async () => {
    const held = Array.from({ length: MAX_CONNECTIONS }, () => {
      const sessions = new Http2SessionManager(server.url);
      const health = createClient(Health, createGrpcTransport({ baseUrl: server.url, sessionManager: sessions }));
      const watch = new AbortController();
      let open!: () => void;
      const opened = new Promise<void>((r) => (open = r));
      // A watch stream in progress keeps its connection from being closed as idle.
      const watching = (async () => {
        try {
          for await (const _ of health.watch({ service: "" }, { signal: watch.signal })) open();
        } catch {
          // Aborted at the end of the test.
        }
      })();
      return { sessions, health, watch, opened, watching };
    });
    try {
      await Promise.all(held.map((h) => h.opened));

      const extra = new Client({ url: server.url });
      try {
        const refused = await extra.jobs().list().then(
          () => null,
          (e: unknown) => ConnectError.from(e),
        );
        // The connection is closed as soon as it is accepted; Connect's client
        // reports the stream it had opened as cancelled or unavailable.
        expect([Code.Unavailable, Code.Canceled]).toContain(refused?.code);
      } finally {
        extra.close();
      }
      for (const h of held) expect((await h.health.check({ service: "" })).status).toBeDefined();

      // One leaves; a new connection gets in.
      held[0].watch.abort();
      held[0].sessions.abort();
      const next = new Client({ url: server.url });
      try {
        const deadline = Date.now() + 10_000;
        for (;;) {
          const ok = await next.jobs().list().then(
            () => true,
            (e: unknown) => (Date.now() > deadline ? Promise.reject(e) : false),
          );
          if (ok) break;
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        next.close();
      }
    } finally {
      for (const h of held) {
        h.watch.abort();
        h.sessions.abort();
      }
      await Promise.all(held.map((h) => h.watching));
    }
  });

  it("refuses a request over the size limit with ResourceExhausted naming the limit and its setting, and writes nothing", async () => {
    const pad = (bytes: number) => new TextEncoder().encode(JSON.stringify({ pad: "x".repeat(bytes) }));
    const job = (taskBytes: number, tasks: number) => ({
      name: "large",
      tasks: Array.from({ length: tasks }, () => ({ identifier: { name: "Noop", version: "v1.0" }, input: pad(taskBytes) })),
    });
    for (const transport of [
      createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
      createGrpcTransport({ baseUrl: server.url }),
    ]) {
      const jobs = createClient(JobService, transport);
      const before = (await server.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM jobs`)[0].n;
      const refused = await jobs.submitJobs({ jobs: [job(100_000, 3)] }).then(
        () => null,
        (e: unknown) => ConnectError.from(e),
      );
      expect(refused?.code).toBe(Code.ResourceExhausted);
      expect(refused?.rawMessage).toContain(`the limit is ${MAX_REQUEST_BYTES} bytes`);
      expect(refused?.rawMessage).toContain("SLUICE_MAX_REQUEST_BYTES");
      expect(refused?.rawMessage).toContain("--max-request-bytes");
      expect((await server.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM jobs`)[0].n).toBe(before);

      // Under the limit, the same kind of request is taken.
      const res = await jobs.submitJobs({ jobs: [job(100_000, 2)] });
      expect(res.results[0].result.case).toBe("job");
    }
  });
});

describe("many concurrent submitters", () => {
  let child: (Child & { url: string }) | undefined;
  let drop: (() => Promise<void>) | undefined;
  afterAll(async () => {
    child?.process.kill("SIGKILL");
    await child?.exited;
    await drop?.();
  });

  /** The server process's peak resident memory so far, in MB (VmHWM). */
  const peakRssMb = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

  it("200 submitters of 100 one-task jobs each leave the server under 300 MB, and every job is written", async () => {
    const db = await createDatabase();
    drop = db.drop;
    child = await serverProcess({ DATABASE_URL: db.url });
    const before = peakRssMb(child.process.pid!);
    const clients = Array.from({ length: 200 }, () => new Client({ url: child!.url }));
    try {
      await Promise.all(clients.map((c) => Promise.all(Array.from({ length: 100 }, (_, i) => c.jobs().submit("flood", new Noop({ i }))))));
    } finally {
      for (const c of clients) c.close();
    }
    const peak = peakRssMb(child.process.pid!);
    console.log(`server peak RSS: ${before.toFixed(0)} MB at start, ${peak.toFixed(0)} MB after 20,000 submits`);
    expect(peak).toBeLessThan(300);

    const postgres = (await import("postgres")).default;
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      expect((await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM jobs WHERE name = 'flood'`)[0].n).toBe(20_000);
    } finally {
      await sql.end();
    }
  }, 120_000);
});

describe("a listener closing", () => {
  it("closes idle keep-alive HTTP/1.1 and HTTP/2 connections at once, without waiting out the grace period", async () => {
    const listener = await listen((_req, res) => res.end("ok"), "127.0.0.1", 0);
    const url = `http://127.0.0.1:${listener.port}`;
    // A client that keeps its HTTP/1.1 connection open between requests, as browsers and scrapers do.
    const agent = new http.Agent({ keepAlive: true });
    const body = await new Promise<string>((resolve, reject) => {
      http.get(`${url}/`, { agent }, (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve(text));
      }).on("error", reject);
    });
    expect(body).toBe("ok");
    const [kept] = Object.values(agent.freeSockets).flat();
    expect(kept).toBeDefined();
    const h1Closed = eventWithin(kept!, "close", 30_000, "the idle HTTP/1.1 connection to be closed");
    const h2 = http2.connect(url);
    h2.on("error", () => {});
    await new Promise<void>((resolve) => h2.request({ ":path": "/" }).on("end", resolve).resume());
    const h2Closed = eventWithin(h2, "close", 30_000, "the idle HTTP/2 connection to be closed");

    // A grace period longer than the test may take: only closing the idle connections lets this finish.
    await listener.close(10 * 60_000);
    await Promise.all([h1Closed, h2Closed]);
    agent.destroy();
  });
});
