import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer } from "../server/build-server.js";
import { Client, type ExecutionContext, Task } from "../runner/index.js";
import { buildConsoleIfStale, launchChromium } from "./support/browser.js";
import { ROOT, createDatabase, eventually, jobInState, quiet, useSandbox } from "./support/harness.js";

/**
 * Where the screenshots of the main pages go: test-results/screenshots, or the
 * folder SLUICE_SCREENSHOTS names (`SLUICE_SCREENSHOTS=docs/screenshots npm test`
 * renews the ones the README shows).
 */
const SCREENSHOTS = join(ROOT, process.env.SLUICE_SCREENSHOTS ?? join("test-results", "screenshots"));

class Fetch extends Task<{ url: string }> {
  static identifier = { name: "Fetch", version: "v1.0" };
  execute() {}
}

class Parse extends Task<{ file: string }> {
  static identifier = { name: "Parse", version: "v1.0" };
  execute() {
    if (this.input.file === "broken.csv") throw new Error("broken.csv: line 3 has 4 fields, expected 5");
  }
}

/** A root task that fans out: a fetch, then two parses that depend on it. */
class Ingest extends Task<{ day: string }> {
  static identifier = { name: "Ingest", version: "v1.0" };
  execute(context: ExecutionContext) {
    const fetch = context.submitSubtask(new Fetch({ url: `https://example.com/${this.input.day}` }));
    context.submitSubtask(new Parse({ file: "good.csv" }), { dependsOn: [fetch] });
    context.submitSubtask(new Parse({ file: "broken.csv" }), { dependsOn: [fetch] });
  }
}

class Part extends Task<{ i: number }> {
  static identifier = { name: "Part", version: "v1.0" };
  execute() {}
}

/** Many siblings of one name: the diagram draws them as a group. */
class Split extends Task<{ parts: number }> {
  static identifier = { name: "Split", version: "v1.0" };
  execute(context: ExecutionContext) {
    for (let i = 0; i < this.input.parts; i++) context.submitSubtask(new Part({ i }));
  }
}

/** A task no runner of this test registers: its jobs stay queued. */
class Idle extends Task<{ n: number }> {
  static identifier = { name: "Idle", version: "v1.0" };
  execute() {}
}

describe("web console in Chromium", () => {
  const box = useSandbox();
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    await buildConsoleIfStale();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
    page.setDefaultTimeout(20_000);
    await mkdir(SCREENSHOTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
  });

  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });

  it("shows a submitted job in the list, and its task tree with each task's state", async () => {
    await page.goto(`${box.url}/`);
    expect(page.url()).toBe(`${box.url}/ui/`);
    await page.getByRole("heading", { name: "Jobs" }).waitFor();

    const job = await box.client.jobs().submit("ingest 2026-12-03", new Ingest({ day: "2026-12-03" }));
    // The list refreshes by itself.
    const row = page.locator(`tr[data-job-id="${job.id}"]`);
    await row.waitFor();
    expect(await row.locator(".badge").textContent()).toBe("queued");

    await box.client.runner("default", { tasks: [Ingest, Fetch, Parse], logger: quiet }).runAll();
    await jobInState(box.client, job.id, ["failed"]);
    await eventually(async () => (await row.locator(".badge").textContent()) === "failed", 20_000, "the row to say failed");
    const failedCount = page.locator('.count-chip[data-state="failed"] .count-value');
    await eventually(async () => (await failedCount.textContent()) === "1", 20_000, "one failed job counted");
    await shot("jobs");

    await row.getByRole("link", { name: `#${job.id}` }).click();
    const nodes = page.locator('.task-graph .node[data-kind="task"]');
    await eventually(async () => (await nodes.count()) === 4, 20_000, "four task nodes");
    const states = await nodes.evaluateAll((els) => els.map((e) => `${e.getAttribute("aria-label")!.split(" #")[0]}:${e.getAttribute("data-state")}`));
    expect(states.sort()).toEqual(["Task Fetch:computed", "Task Ingest:computed", "Task Parse:computed", "Task Parse:failed"]);
    // Subtasks hang under their parent, the parses under the fetch they depend on.
    expect(await page.locator(".task-graph .edge-parent").count()).toBe(3);
    expect(await page.locator(".task-graph .edge-dependency").count()).toBe(2);

    // Keyboard: focus the failed task and open it with Enter.
    const failedNode = page.locator('.task-graph .node[data-state="failed"]');
    await failedNode.focus();
    await page.keyboard.press("Enter");
    const details = page.locator(".task-details");
    await details.locator(".error-message").waitFor();
    expect(await details.locator(".error-message").textContent()).toBe("broken.csv: line 3 has 4 fields, expected 5");
    expect(await details.locator("pre.code").first().textContent()).toContain("at Parse.execute");
    expect(await details.getByLabel("Task input").textContent()).toContain('"file": "broken.csv"');
    await shot("job");
  });

  it("draws many siblings as one group, and finds a task inside it by its id", async () => {
    const job = await box.client.jobs().submit("split in 40", new Split({ parts: 40 }));
    await box.client.runner("default", { tasks: [Split, Part], concurrency: 8, logger: quiet }).runAll();
    const parts = (await box.client.jobs().get(job.id)).tasks.filter((t) => t.identifier.name === "Part");
    expect(parts).toHaveLength(40);

    await page.goto(`${box.url}/ui/#/jobs/${job.id}`);
    const group = page.locator('.task-graph .node[data-kind="group"]');
    await group.waitFor();
    expect(await group.getAttribute("data-members")).toBe("40");
    expect(await page.locator('.task-graph .node[data-kind="task"]').count()).toBe(1);

    const wanted = parts[37];
    await page.getByLabel("Task id").fill(wanted.id);
    await page.getByRole("button", { name: "Show", exact: true }).click();
    const node = page.locator(`.task-graph .node[data-task-id="${wanted.id}"]`);
    await node.waitFor();
    expect(await node.getAttribute("aria-pressed")).toBe("true");
    expect(await page.locator(".task-details h2").textContent()).toContain(`#${wanted.id}`);
  });

  it("cancels a job with its button, as the API then reports", async () => {
    const job = await box.client.jobs().submit("waits for a runner", new Idle({ n: 1 }));
    await page.goto(`${box.url}/ui/#/jobs/${job.id}`);
    await page.locator('.task-graph .node[data-state="queued"]').waitFor();
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Cancel job" }).click();
    const badge = page.locator("dl.facts .badge").first();
    await eventually(async () => (await badge.textContent()) === "cancelled", 20_000, "the job to show as cancelled");
    expect((await box.client.jobs().get(job.id)).state).toBe("cancelled");
    expect(await page.getByRole("button", { name: "Cancel job" }).isDisabled()).toBe(true);
    expect(await page.getByRole("button", { name: "Retry job" }).isEnabled()).toBe(true);
  });

  it("pauses a cron task, and lists its next ticks while it runs", async () => {
    const recurrent = box.client.recurrentTasks();
    await recurrent.createRecurringCronTask("nightly-report", "default", new Idle({ n: 2 }), "30 2 * * *", { timeZone: "Europe/Berlin" });
    await page.goto(`${box.url}/ui/#/recurrent`);
    const row = page.locator('tr[data-recurrent="nightly-report"]');
    await row.waitFor();
    expect(await row.locator(".ticks li").count()).toBe(3);
    await shot("recurrent");

    await row.getByRole("button", { name: "Pause nightly-report" }).click();
    await row.getByRole("button", { name: "Resume nightly-report" }).waitFor();
    expect((await recurrent.get("nightly-report")).paused).toBe(true);
    expect(await row.locator(".badge").textContent()).toBe("paused");
  });

  it("sends the token typed in the header with every call", async () => {
    await page.goto(`${box.url}/ui/#/clusters`);
    await page.getByLabel("API token").fill("s3cret-token");
    const call = page.waitForRequest((r) => r.url().includes("/sluice.v1.") && r.headers()["authorization"] === "Bearer s3cret-token");
    await page.getByRole("button", { name: "Use" }).click();
    await call;
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem("sluice.token"))).toBe("s3cret-token");
    await page.getByLabel("API token").fill("");
    await page.getByRole("button", { name: "Use" }).click();
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem("sluice.token"))).toBeNull();
  });

  it("shows each cluster's ready work at a glance", async () => {
    await box.client.clusters().create("imports", "Imports");
    for (let n = 0; n < 3; n++) await box.client.jobs().submit(`import ${n}`, new Idle({ n }), { cluster: "imports" });
    await page.goto(`${box.url}/ui/#/queues`);
    const card = page.locator('.card[data-cluster="imports"]');
    await eventually(async () => (await card.locator('[data-stat="ready"]').textContent()) === "3", 20_000, "3 ready tasks on imports");
    expect(await page.locator('.card[data-cluster="default"] [data-stat="failed"]').textContent()).toBe("1");
    await shot("queues");

    await page.emulateMedia({ colorScheme: "dark" });
    await page.goto(`${box.url}/ui/#/jobs`);
    await page.locator("tr[data-job-id]").first().waitFor();
    await shot("jobs-dark");
    await page.emulateMedia({ colorScheme: "light" });
  });
});

describe("the console on a server that needs tokens", () => {
  const ADMIN = "a-static-admin-secret-for-the-console";
  const box = useSandbox({ auth: "required", adminToken: ADMIN });
  let browser: Browser;

  beforeAll(async () => {
    await buildConsoleIfStale();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  it("says a token is needed, and shows the jobs once one is entered", async () => {
    const client = new Client({ url: box.url, token: ADMIN });
    try {
      const job = await client.jobs().submit("behind a token", new Idle({ n: 9 }));
      const page = await browser.newPage();
      page.setDefaultTimeout(20_000);
      await page.goto(`${box.url}/ui/#/jobs`);
      const error = page.locator("main .error").first();
      await error.waitFor();
      expect(await error.textContent()).toMatch(/Enter an API token/);

      await page.getByLabel("API token").fill(ADMIN);
      await page.getByRole("button", { name: "Use" }).click();
      await page.locator(`tr[data-job-id="${job.id}"]`).waitFor();
      expect(await page.locator("main .error").count()).toBe(0);
    } finally {
      client.close();
    }
  });
});

describe("the console's files over HTTP", () => {
  const box = useSandbox();

  beforeAll(() => buildConsoleIfStale());

  it("redirects / to /ui/, caches hashed assets for good and the page not at all", async () => {
    const root = await fetch(`${box.url}/`, { redirect: "manual" });
    expect(root.status).toBe(308);
    expect(root.headers.get("location")).toBe("/ui/");

    const index = await fetch(`${box.url}/ui/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const html = await index.text();
    const script = html.match(/src="(\/ui\/assets\/[^"]+\.js)"/)![1];

    const asset = await fetch(`${box.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");

    // A console route reloaded in the browser is the app; a missing asset is not.
    expect((await fetch(`${box.url}/ui/jobs/42`)).headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect((await fetch(`${box.url}/ui/assets/gone-1234.js`)).status).toBe(404);
  });

  it("never serves a file outside the console's folder", async () => {
    for (const path of ["/ui/../package.json", "/ui/%2e%2e/package.json", "/ui/..%2fpackage.json", "/ui/assets/..%2f..%2f..%2fpackage.json"]) {
      const res = await fetch(`${box.url}${path}`);
      const body = await res.text();
      expect(body, path).not.toContain('"name": "sluice"');
    }
    expect((await fetch(`${box.url}/ui/`, { method: "POST" })).status).toBe(405);
  });

  it("says how to build the console when it has not been built", async () => {
    const empty = await mkdtemp(join(tmpdir(), "sluice-no-console-"));
    const db = await createDatabase();
    const server = await buildServer({ host: "127.0.0.1", port: 0, databaseUrl: db.url, consoleDir: empty });
    try {
      const res = await fetch(`${server.url}/ui/`);
      expect(res.status).toBe(503);
      expect(await res.text()).toContain("npm run build:console");
      // The API is there all the same.
      const api = await fetch(`${server.url}/sluice.v1.ClusterService/ListClusters`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(api.status).toBe(200);
    } finally {
      await server.stop();
      await db.drop();
      await rm(empty, { recursive: true, force: true });
    }
  });
});
