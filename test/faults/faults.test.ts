import { describe, expect, inject, it } from "vitest";
import { type ScenarioReport, type SuiteOptions, backendTerminations, interruptedSubmits, runnerKills, secondServerKilled, serverRestarts } from "./scenarios.js";

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

/** What holds after every fault scenario. */
function expectNothingLost(r: ScenarioReport) {
  const why = r.diagnostics.length > 0 ? `; output of the processes:\n${r.diagnostics.join("\n---\n")}` : "";
  expect(r.crashes, `server or runner exits the scenario did not cause${why}`).toEqual([]);
  expect(r.faults.filter((f) => f.movedMs === null || f.recoveredMs === null), `faults the queue did not come through within the bound${why}`).toEqual([]);
  expect(
    {
      lost: r.lost,
      neverExecuted: r.neverExecuted,
      completedUnexecuted: r.completedUnexecuted,
      miscounted: r.miscounted,
      failed: r.failed,
      acknowledgedMissing: r.acknowledgedMissing,
    },
    why,
  ).toEqual({ lost: 0, neverExecuted: 0, completedUnexecuted: 0, miscounted: 0, failed: 0, acknowledgedMissing: 0 });
  expect(r.completed).toBe(r.submitted);
}

// A scenario bounds its own waits (the lease time plus slack after each fault,
// and as long again for the drain to stall); this only stops a hung one.
describe(`faults, short form (seed ${seed})`, { timeout: 240_000 }, () => {
  it("runners SIGKILLed at random during a drain", async () => {
    const r = await runnerKills(options(), { jobs: 3_000, taskMs: 10, runners: 3, concurrency: 4, faults: 3 });
    expectNothingLost(r);
    expect(r.writtenUnacknowledged).toBe(0);
  });

  it("a server SIGKILLed and restarted under a drain", async () => {
    const r = await serverRestarts(options(), { jobs: 5_000, taskMs: 1, runners: 2, concurrency: 16, faults: 5, restartDelayMs: 500 });
    expectNothingLost(r);
  });

  it("a second server SIGKILLed while the first keeps working", async () => {
    const r = await secondServerKilled(options(), { jobs: 3_000, taskMs: 10, runners: 4, concurrency: 4, faults: 1 });
    expectNothingLost(r);
  });

  it("database backends terminated during a drain and submits", async () => {
    const r = await backendTerminations(options(), { jobs: 3_000, taskMs: 5, runners: 2, concurrency: 8, faults: 3, terminationsPerFault: 3, submits: 2_000, ratePerSecond: 500 });
    expectNothingLost(r);
  });

  it("submits interrupted by a server SIGKILL and retried", async () => {
    const r = await interruptedSubmits(options(), { submits: 2_000, ratePerSecond: 200, runners: 2, concurrency: 8, taskMs: 2, faults: 2, restartDelayMs: 300 });
    expectNothingLost(r);
    console.log(`written but never acknowledged: ${r.writtenUnacknowledged} jobs`);
  });
});
