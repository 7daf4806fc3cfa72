import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { JobService } from "../gen/sluice/v1/job_service_pb.js";
import { Client, Task } from "../runner/index.js";
import { useSandbox } from "./support/harness.js";

class Count extends Task<{ n: number }> {
  static identifier = { name: "Count", version: "v1.0" };
  execute() {}
}

const count = (n: number) => ({ identifier: { name: "Count", version: "v1.0" }, input: new TextEncoder().encode(JSON.stringify({ n })) });

describe("submits with an idempotency key", () => {
  const box = useSandbox();
  const closers: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  const jobsNamed = async (name: string) =>
    (await box.sql<{ id: string }[]>`SELECT id::text FROM jobs WHERE name = ${name} ORDER BY id`).map((r) => r.id);

  it("create one job: a second submit with the key answers with the first job, through every submit call", async () => {
    const first = await box.api.jobs.submitJob({ name: "keyed", tasks: [count(1)], idempotencyKey: "key-1" });
    const again = await box.api.jobs.submitJob({ name: "keyed", tasks: [count(1)], idempotencyKey: "key-1" });
    expect(again.job!.id).toBe(first.job!.id);
    const batch = await box.api.jobs.submitJobs({
      jobs: [
        { name: "keyed", tasks: [count(1)], idempotencyKey: "key-1" },
        { name: "keyed", tasks: [count(2)], idempotencyKey: "key-2" },
        { name: "keyed", tasks: [count(2)], idempotencyKey: "key-2" },
        { name: "keyed", tasks: [count(3)] },
      ],
    });
    const ids = batch.results.map((r) => (r.result.case === "job" ? r.result.value.id : r.result.value?.message));
    expect(ids[0]).toBe(first.job!.id);
    expect(ids[2]).toBe(ids[1]);
    expect(new Set(ids).size).toBe(3);
    expect(await jobsNamed("keyed")).toEqual([...new Set(ids)].sort((a, b) => Number(a) - Number(b)));
    // The job that key-2 made has its one task, not two.
    const [{ n }] = await box.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM tasks WHERE job_id = ${ids[1]!}`;
    expect(n).toBe(1);
  });

  it("hold for scheduled jobs, and refuse a key that is too long", async () => {
    const startAt = { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 };
    const a = await box.api.jobs.submitJob({ name: "later", tasks: [count(1)], startAt, idempotencyKey: "later-1" });
    const b = await box.api.jobs.submitJob({ name: "later", tasks: [count(1)], startAt, idempotencyKey: "later-1" });
    expect(b.job!.id).toBe(a.job!.id);
    expect(await jobsNamed("later")).toEqual([a.job!.id]);
    const err = await box.api.jobs.submitJob({ name: "x", tasks: [count(1)], idempotencyKey: "k".repeat(201) }).then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toMatch(/idempotency_key must be 1 to 200 characters/);
  });

  it("let the SDK send a batch again when its answer is lost, without a duplicate", async () => {
    // A proxy that passes the first submit message to the server, then ends
    // the stream before the answer reaches the client: the jobs were written,
    // and the client cannot know.
    let cut = false;
    let messages = 0;
    const routes = (router: ConnectRouter) =>
      router.service(JobService, {
        async *submitStream(requests, ctx) {
          const upstream = box.api.jobs.submitStream(
            (async function* () {
              for await (const m of requests) {
                messages++;
                yield m;
              }
            })(),
            { signal: ctx.signal },
          );
          for await (const res of upstream) {
            if (!cut) {
              cut = true;
              throw new ConnectError("the proxy lost the answer", Code.Unavailable);
            }
            yield res;
          }
        },
      });
    const server = http2.createServer(connectNodeAdapter({ routes }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const client = new Client({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    closers.push(() => client.close());

    const made = await Promise.all(Array.from({ length: 50 }, (_, i) => client.jobs().submit(`resent ${i}`, new Count({ n: i }))));
    expect(cut).toBe(true);
    expect(messages).toBeGreaterThan(1);
    for (let i = 0; i < 50; i++) expect(await jobsNamed(`resent ${i}`)).toEqual([made[i].id]);
  });
});
