import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { describe, expect, it } from "vitest";
import { Task } from "../runner/index.js";
import { ROOT, eventually, useSandbox } from "./support/harness.js";

class Square extends Task<{ n: number }> {
  static identifier = { name: "Square", version: "v1.0" };
  execute() {}
}

/**
 * A runner written from docs/runner-protocol.md and the .proto files alone,
 * with a generic gRPC client (no SDK, no generated code): proves the protocol
 * is enough for a runner in another language.
 */
function genericRunner(address: string) {
  const definition = protoLoader.loadSync(join(ROOT, "proto", "sluice", "v1", "runner_service.proto"), {
    includeDirs: [join(ROOT, "proto")],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  // biome-ignore lint: a generic client has no static types
  const pkg = grpc.loadPackageDefinition(definition) as any;
  const client = new pkg.sluice.v1.RunnerService(address, grpc.credentials.createInsecure());
  return { client, close: () => client.close() };
}

describe("a runner written from the protocol's documentation with a generic gRPC client", () => {
  const box = useSandbox();

  it("receives assignments, reports results in order, extends leases, drains and ends; failures are recorded", async () => {
    const jobs = await Promise.all(Array.from({ length: 20 }, (_, n) => box.client.jobs().submit(`square ${n}`, new Square({ n }))));
    const { client, close } = genericRunner(new URL(box.url).host);
    const call = client.Session();
    const executed: number[] = [];
    const answers: { kind: string; refused?: unknown[]; lost?: unknown[] }[] = [];
    let held = 0;
    let drained = false;
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("data", (res: { event: string; assignment?: Record<string, any>; recorded?: { refused: unknown[] }; extended?: { lost: unknown[] } }) => {
      if (res.event === "assignment") {
        const a = res.assignment!;
        held += a.ids.length;
        // Extend every lease once, then report: successes as columns, n = 13 as a failure.
        call.write({ extend: { leases: a.ids.map((taskId: string, i: number) => ({ taskId, lease: a.leases[i] })) } });
        const computed = { taskIds: [] as string[], leases: [] as number[], jobIds: [] as string[] };
        const results = [];
        for (let i = 0; i < a.ids.length; i++) {
          const input = JSON.parse(Buffer.from(a.inputs[i]).toString("utf8")) as { n: number };
          const identifier = a.identifiers[a.identifierIndexes[i]];
          expect(identifier).toMatchObject({ name: "Square", version: "v1.0" });
          executed.push(input.n);
          if (input.n === 13) {
            results.push({ task: { taskId: a.ids[i], lease: a.leases[i] }, jobId: a.jobIds[i], failed: { message: "13 is unlucky", stack: "" } });
          } else {
            computed.taskIds.push(a.ids[i]);
            computed.leases.push(a.leases[i]);
            computed.jobIds.push(a.jobIds[i]);
          }
        }
        call.write({ results: { results, computed } });
      } else if (res.event === "recorded") {
        answers.push({ kind: "recorded", refused: res.recorded!.refused });
      } else if (res.event === "extended") {
        answers.push({ kind: "extended", lost: res.extended!.lost });
      } else if (res.event === "idle" && executed.length === 20 && !drained) {
        drained = true;
        call.write({ drain: {} });
        call.write({ end: {} });
        call.end();
      }
    });
    call.write({ start: { runnerId: crypto.randomUUID(), cluster: "default", tasks: [{ name: "Square", version: "v1.0" }], concurrency: 8 } });

    const status = await ended;
    close();
    expect(status.code).toBe(grpc.status.OK);
    expect(executed.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, n) => n));
    expect(held).toBe(20);
    // Each extension and each results message was answered, in the order sent, with nothing refused or lost.
    expect(answers.filter((a) => a.kind === "recorded").length).toBe(answers.filter((a) => a.kind === "extended").length);
    for (const a of answers) expect(a.refused ?? a.lost).toEqual([]);
    const states = await Promise.all(jobs.map((j) => eventually(async () => (await box.client.jobs().get(j.id)).state, 5_000)));
    expect(states.filter((s) => s === "completed")).toHaveLength(19);
    const unlucky = await box.client.jobs().get(jobs[13].id);
    expect(unlucky.state).toBe("failed");
    expect(unlucky.tasks[0].lastError?.message).toBe("13 is unlucky");
  });

  it("gets a clear error for a first message that is not start", async () => {
    const { client, close } = genericRunner(new URL(box.url).host);
    const call = client.Session();
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on("status", resolve);
      call.on("data", () => {});
      call.on("error", () => {});
      call.write({ drain: {} });
      call.end();
    });
    close();
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toMatch(/first message of a session must be start/);
  });
});
