/**
 * How long the web console takes to open a job of 10,000 tasks in Debian's
 * Chromium (headless, driven by playwright-core), against a `sluice server`
 * process. Two shapes: a root with 10,000 subtasks (flat), and a root with
 * 100 subtasks of 100 subtasks each (nested, 10,101 tasks). All tasks are
 * run first, so that the read carries finished tasks with their times.
 *
 * Figures, each the median of --runs loads (5):
 *  - open: from the start of a navigation to the job's URL (a new page load,
 *    assets from the browser's cache) until the diagram is drawn, read in the
 *    page (performance.now() once the nodes exist);
 *  - of which GetJob: the call's duration as the browser saw it (request to
 *    the last byte of the answer);
 *  - in-app: from a click on the job in the Jobs list until the diagram is drawn;
 *  - expand: from a click on the group of 10,000 siblings until its first
 *    members are drawn.
 *
 * npm run bench:console [-- --runs N] [--tasks N] [--no-wait]
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { Client, type ExecutionContext, Task } from "../runner/index.js";
import { buildConsoleIfStale, launchChromium } from "../test/support/browser.js";
import { Databases, ROOT, log, main, option, printHeader, startServer } from "./lib-extra/common.js";

const RUNS = Number(option("runs") ?? 5);
const TASKS = Number(option("tasks") ?? 10_000);
const GOAL_MS = 2000;

class BenchLeaf extends Task<{ i: number }> {
  static identifier = { name: "BenchLeaf", version: "v1.0" };
  execute() {}
}

class BenchFlat extends Task<{ n: number }> {
  static identifier = { name: "BenchFlat", version: "v1.0" };
  execute(context: ExecutionContext) {
    for (let i = 0; i < this.input.n; i++) context.submitSubtask(new BenchLeaf({ i }));
  }
}

class BenchBranch extends Task<{ n: number }> {
  static identifier = { name: "BenchBranch", version: "v1.0" };
  execute(context: ExecutionContext) {
    for (let i = 0; i < this.input.n; i++) context.submitSubtask(new BenchLeaf({ i }));
  }
}

class BenchNested extends Task<{ n: number }> {
  static identifier = { name: "BenchNested", version: "v1.0" };
  execute(context: ExecutionContext) {
    const side = Math.round(Math.sqrt(this.input.n));
    for (let i = 0; i < side; i++) context.submitSubtask(new BenchBranch({ n: side }));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms: number) => `${Math.round(ms).toLocaleString("en")} ms`;

/** Waits until the diagram has drawn its nodes; returns performance.now() in the page then. */
async function drawn(page: Page): Promise<number> {
  await page.waitForSelector(".task-graph .node", { timeout: 60_000 });
  return page.evaluate(() => performance.now());
}

await main(async (cleanup) => {
  await printHeader(`console: opening a job of ${TASKS.toLocaleString("en")} tasks in Chromium`);
  await buildConsoleIfStale();
  const dbs = new Databases();
  cleanup(() => dbs.dropAll());
  const db = await dbs.create("console");
  const server = await startServer(db.url);
  cleanup(() => server.stop());
  const client = new Client({ url: server.url });
  cleanup(() => client.close());

  const flat = await client.jobs().submit("flat 10k", new BenchFlat({ n: TASKS }));
  const nested = await client.jobs().submit("nested 10k", new BenchNested({ n: TASKS }));
  await client.runner("default", { tasks: [BenchFlat, BenchNested, BenchBranch, BenchLeaf], concurrency: 32, logger: { info() {}, warn() {}, error() {} } }).runAll();
  for (const j of [flat, nested]) {
    const got = await client.jobs().get(j.id);
    log(`job ${j.id} (${j.name}): ${got.tasks.length.toLocaleString("en")} tasks, ${got.state}`);
  }

  const browser = await launchChromium();
  cleanup(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  // Loads the assets once: the figures are for a console already open in the browser.
  await page.goto(`${server.url}/ui/#/jobs`);
  await page.waitForSelector("tr[data-job-id]");

  const rows: string[] = [];
  for (const job of [flat, nested]) {
    const open: number[] = [];
    const call: number[] = [];
    const inApp: number[] = [];
    const expand: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      await page.goto("about:blank");
      await page.goto(`${server.url}/ui/#/jobs/${job.id}`);
      open.push(await drawn(page));
      call.push(
        await page.evaluate(() => {
          const entries = performance.getEntriesByType("resource").filter((e) => e.name.endsWith("/sluice.v1.JobService/GetJob"));
          return entries[entries.length - 1]?.duration ?? NaN;
        }),
      );

      await page.goto(`${server.url}/ui/#/jobs`);
      await page.waitForSelector(`tr[data-job-id="${job.id}"]`);
      const t0 = await page.evaluate(() => performance.now());
      await page.click(`tr[data-job-id="${job.id}"] a`);
      inApp.push((await drawn(page)) - t0);

      const group = page.locator('.task-graph .node[data-kind="group"]').first();
      const t1 = await page.evaluate(() => performance.now());
      await group.click();
      await page.waitForSelector('.task-graph .node[data-kind="more"]', { timeout: 60_000 });
      expand.push((await page.evaluate(() => performance.now())) - t1);
    }
    const nodes = await page.locator(".task-graph .node").count();
    rows.push(
      `| ${job.name} | ${fmt(median(open))} | ${fmt(median(call))} | ${fmt(median(inApp))} | ${fmt(median(expand))} | ${nodes} | ${median(open) <= GOAL_MS ? "yes" : "no"} |`,
    );
  }
  await page.goto("about:blank");
  await page.goto(`${server.url}/ui/#/jobs/${nested.id}`);
  await drawn(page);
  await page.screenshot({ path: join(ROOT, "docs", "screenshots", "job-10k.png") });

  log("");
  log(`medians of ${RUNS} loads; goal: open within ${fmt(GOAL_MS)}`);
  log("| job | open (new page load) | of which GetJob | in-app (click in Jobs) | expand the group | nodes drawn after expand | within goal |");
  log("|---|---|---|---|---|---|---|");
  for (const r of rows) log(r);
});
