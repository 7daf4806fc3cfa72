import { describe, expect, inject, it } from "vitest";
import { SUBMITS_HAVE_KEYS } from "./submitter.js";
import { type ScenarioReport, problems, type SuiteOptions, backendTerminations, interruptedSubmits, runnerKills, secondServerKilled, serverRestarts } from "./scenarios.js";

const seed = Number(process.env.FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));

function options(): SuiteOptions {
  return {
    adminUrl: inject("adminUrl"),
    dbPrefix: inject("dbPrefix"),
    leaseTtlMs: 4_000,
    slackMs: 15_000,
    seed,
    log: process.env.FAULT_LOG ? (line) => console.log(line) : undefined,
  };
}

/** What holds after every fault scenario (see `problems`). */
function expectNothingLost(r: ScenarioReport, strictSubmits: boolean) {
  const why = r.diagnostics.length > 0 ? `output of the processes:\n${r.diagnostics.join("\n---\n")}` : undefined;
  expect(problems(r, strictSubmits), why).toEqual([]);
  expect(r.completed).toBe(r.submitted);
}

// A scenario bounds its own waits (the lease time plus slack after each fault,
// and as long again for the drain to stall); this only stops a hung one.
describe(`faults, short form (seed ${seed})`, { timeout: 240_000 }, () => {
  // The dead runner's leased tasks come back when their leases end.
  it("runners SIGKILLed at random during a drain", async () => {
    const r = await runnerKills(options(), { jobs: 3_000, taskMs: 10, runners: 2, concurrency: 4, faults: 3 });
    expectNothingLost(r, true);
  });

  // Each runner must get work again after each restart: a count of the
  // runner's capacity kept across reconnects once left runners idle for good.
  it("a server SIGKILLed and restarted under a drain", async () => {
    const r = await serverRestarts(options(), { jobs: 5_000, taskMs: 1, runners: 2, concurrency: 16, faults: 5, restartDelayMs: 300 });
    expectNothingLost(r, true);
  });

  // The surviving server's lease expiry returns what the orphaned runners held.
  it("a second server SIGKILLed while the first keeps working", async () => {
    const r = await secondServerKilled(options(), { jobs: 3_000, taskMs: 10, runners: 2, concurrency: 8, faults: 1 });
    expectNothingLost(r, true);
  });

  // The server must survive (no exit, no unhandled rejection), and its
  // sessions with runners too, or end them so that runners reconnect.
  it("database backends terminated during a drain and submits", async () => {
    const r = await backendTerminations(options(), { jobs: 3_000, taskMs: 5, runners: 2, concurrency: 8, faults: 3, terminationsPerFault: 3, ratePerSecond: 300 });
    expectNothingLost(r, SUBMITS_HAVE_KEYS);
  });

  // A submit sent again with its idempotency key after its answer was lost
  // must not write a second job.
  it("submits interrupted by a server SIGKILL and retried", async () => {
    const r = await interruptedSubmits(options(), { submits: 2_000, ratePerSecond: 200, runners: 2, concurrency: 8, taskMs: 2, faults: 2, restartDelayMs: 300 });
    expectNothingLost(r, SUBMITS_HAVE_KEYS);
  });
});
