import { type IncomingMessage, type Server, createServer } from "node:http";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Child, FIXTURES, ROOT, createDatabase, serverProcess, sluice, spawnNode } from "./support/harness.js";

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
}

/**
 * An OTLP/HTTP trace receiver: takes the JSON export (POST /v1/traces) as a
 * collector would and keeps each span with the service that sent it.
 */
async function otlpReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; server: Server }> {
  const spans: ReceivedSpan[] = [];
  const read = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  };
  const server = createServer(async (req, res) => {
    if (req.method !== "POST" || req.url !== "/v1/traces" || !req.headers["content-type"]?.startsWith("application/json")) {
      res.writeHead(415).end();
      return;
    }
    const body = JSON.parse(await read(req));
    for (const rs of body.resourceSpans ?? []) {
      const service = rs.resource?.attributes?.find((a: { key: string }) => a.key === "service.name")?.value?.stringValue ?? "";
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? "", name: s.name });
      }
    }
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, spans, server };
}

describe("traces", () => {
  const children: Child[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of children) if (c.process.exitCode === null) c.process.kill("SIGKILL");
    for (const c of cleanups) await c();
  });

  it("follow one job from the submitting CLI through the server to the runner and its subtask, in one trace", async () => {
    const receiver = await otlpReceiver();
    cleanups.push(() => new Promise((r) => receiver.server.close(r)));
    const db = await createDatabase();
    cleanups.push(() => db.drop());
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "100" };
    const server = await serverProcess({ DATABASE_URL: db.url, ...otel });
    children.push(server);
    const env = { SLUICE_URL: server.url, ...otel };

    const runner = spawnNode([join(ROOT, "bin", "sluice.js"), "runner", join(FIXTURES, "traced", "tasks.ts")], env);
    children.push(runner);
    await runner.waitFor(/runner \S+ on cluster default/);
    const submitted = await sluice(["jobs", "submit", "traced", "--task", "TracedRoot@v1.0", "--wait"], env);
    expect(submitted.code).toBe(0);
    const jobId = /submitted job (\d+)/.exec(submitted.stdout)![1];
    // The server and the runner export on their schedule; the CLI exported as it exited.
    runner.process.kill("SIGTERM");
    expect(await runner.exited).toBe(0);

    const expected = [
      "sluice-client sluice.submit",
      "sluice-server sluice.submit",
      "sluice-server sluice.lease",
      "sluice-server sluice.lease",
      "sluice-runner sluice.execute",
      "sluice-runner sluice.execute",
      "sluice-server sluice.complete",
      "sluice-server sluice.complete",
    ].sort();
    // Each process exports on its own schedule: wait for the whole trace.
    const deadline = Date.now() + 20_000;
    let trace: ReceivedSpan[] = [];
    let names: string[] = [];
    while (Date.now() < deadline) {
      const root = receiver.spans.find((s) => s.service === "sluice-client" && s.name === "sluice.submit");
      trace = root ? receiver.spans.filter((s) => s.traceId === root.traceId) : [];
      names = trace.map((s) => `${s.service} ${s.name}`).sort();
      if (names.length >= expected.length) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(names).toEqual(expected);
    // One tree: every span but the submitter's has its parent in the trace,
    // and the subtask's execution descends from its parent's.
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    for (const s of trace) {
      if (s.service === "sluice-client") expect(s.parentSpanId).toBe("");
      else expect(byId.has(s.parentSpanId)).toBe(true);
    }
    const ancestry = (s: ReceivedSpan): string[] => (byId.has(s.parentSpanId) ? [...ancestry(byId.get(s.parentSpanId)!), s.name] : [s.name]);
    const executions = trace.filter((s) => s.name === "sluice.execute").map(ancestry);
    expect(executions).toContainEqual(["sluice.submit", "sluice.submit", "sluice.lease", "sluice.execute"]);
    expect(executions).toContainEqual(["sluice.submit", "sluice.submit", "sluice.lease", "sluice.execute", "sluice.lease", "sluice.execute"]);
    expect(jobId).toMatch(/^\d+$/);
  });
});
