import { type Counts, Fleet, type FleetOptions } from "./harness.js";
import type { RunnerProcess, ServerProcess } from "./processes.js";
import { Submitter } from "./submitter.js";

/** What every scenario needs besides its sizes. */
export interface SuiteOptions extends FleetOptions {
  /**
   * Added to every bound on the time until the queue moves: process starts,
   * reconnect back-off and a busy machine. Starvation shows up as no movement
   * at all, so the bound can be generous.
   */
  slackMs: number;
  /** Seed of the random choices (which runner dies, when), so a run can be repeated. */
  seed: number;
  log?: (line: string) => void;
}

/** One fault and how the queue came through it. */
export interface FaultRecord {
  /** What was done, e.g. "SIGKILL runner" or "terminated 12 backends". */
  what: string;
  /** How long the fault lasted (a server's downtime until it listened again), ms. */
  downMs: number;
  /** From the fault until the queue moved again, ms; null when it did not within the bound. */
  movedMs: number | null;
  /** From the fault until every task the dead process held was computed, ms (null: not within the bound). */
  recoveredMs?: number | null;
  /** The bound asserted on both. */
  boundMs: number;
}

export interface ScenarioReport extends Counts {
  scenario: string;
  faults: FaultRecord[];
  /** Server and runner exits the scenario did not cause, with their output. */
  crashes: string[];
  /** Unhandled rejections the servers logged. */
  unhandled: string[];
  /** Submits sent again after failing. */
  retriedSubmits: number;
  /** From the first runner's start until the last task was computed (or the drain stalled). */
  drainMs: number;
  /** Whether the drain finished (false: it stalled for the lease time plus slack). */
  drained: boolean;
  /** When something went wrong: the end of every server's and live runner's output. */
  diagnostics: string[];
  leaseTtlMs: number;
}

/** mulberry32: a small seeded generator, so that a failing run's choices can be repeated. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The set-up and accounting every scenario shares. */
class Run {
  readonly faults: FaultRecord[] = [];
  readonly submitters: Submitter[] = [];
  readonly rand: () => number;
  private started = 0;
  private readonly created = performance.now();

  constructor(
    readonly name: string,
    readonly fleet: Fleet,
    readonly options: SuiteOptions,
  ) {
    this.rand = random(options.seed);
  }

  log(line: string): void {
    this.options.log?.(`${this.name} +${((performance.now() - this.created) / 1000).toFixed(1)} s: ${line}`);
  }

  /** Queues `jobs` one-task jobs through `server` and waits for every acknowledgement. */
  async queue(server: ServerProcess, jobs: number, taskMs: number): Promise<void> {
    const s = this.submitter(server, "queued", taskMs);
    await s.run(jobs);
    s.stop();
    this.log(`queued ${jobs} jobs`);
  }

  submitter(server: ServerProcess, prefix: string, taskMs: number): Submitter {
    const s = new Submitter(server.url, prefix, taskMs);
    this.submitters.push(s);
    return s;
  }

  /** Starts the drain's clock: call when the runners start. */
  startClock(): void {
    this.log("runners starting");
    this.started = performance.now();
  }

  /** Every runner slot, held and prefetched: what runners may complete after a fault without leasing anything new. */
  heldCapacity(concurrency: number): number {
    return this.fleet.runners.length * concurrency * 2;
  }

  /**
   * Executions by one runner that prove it got work after a fault: more than
   * it can hold (its concurrency and as much again prefetched), so at least
   * some were leased after the fault.
   */
  freshWork(concurrency: number): number {
    return concurrency * 2 + 10;
  }

  /**
   * The computed count at which fault `i` of `n` is injected: spread over the
   * drain of `total`, with a random offset within each fault's share.
   */
  target(i: number, n: number, total: number): number {
    return Math.floor((total * (i + 0.5 + 0.5 * this.rand())) / (n + 1));
  }

  /** Waits for a fault's moment; false when the queue stalled before it (the fault is injected anyway). */
  async awaitTarget(target: number): Promise<boolean> {
    return this.fleet.waitForComputed(target, this.options.leaseTtlMs + this.options.slackMs);
  }

  /** False once a process died by itself or the queue did not come through a fault: more faults would show nothing new. */
  get healthy(): boolean {
    return this.faults.every((f) => f.movedMs !== null) && this.fleet.crashes().length === 0;
  }

  /**
   * Waits for a submitter's submits to be acknowledged, for `moreMs` plus the
   * lease time plus slack at most (a server that died by itself never
   * answers); what is still unanswered then is given up.
   */
  async settle(submitter: Submitter, submitting: Promise<void>, moreMs = 0): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, moreMs + this.options.leaseTtlMs + this.options.slackMs)));
    await Promise.race([submitting, limit]);
    clearTimeout(timer);
    submitter.stop();
  }

  record(fault: FaultRecord): void {
    this.faults.push(fault);
    const rec = fault.recoveredMs === undefined ? "" : `, held tasks computed after ${fault.recoveredMs ?? "never"} ms`;
    this.log(`${fault.what}: down ${fault.downMs} ms, moved after ${fault.movedMs ?? "never"} ms${rec} (bound ${fault.boundMs} ms)`);
  }

  /** Waits until every task is computed or nothing moves for the lease time plus slack; then counts. */
  async finish(): Promise<ScenarioReport> {
    const { leaseTtlMs, slackMs } = this.options;
    const { total } = await this.fleet.progress();
    const drained = await this.fleet.waitForComputed(total, leaseTtlMs + slackMs);
    const drainMs = Math.round(performance.now() - this.started);
    const acked = new Map<string, string>();
    for (const s of this.submitters) {
      s.stop();
      for (const [k, v] of s.acked) acked.set(k, v);
    }
    const counts = await this.fleet.count(acked);
    const report: ScenarioReport = {
      scenario: this.name,
      ...counts,
      faults: this.faults,
      crashes: this.fleet.crashes(),
      unhandled: this.fleet.unhandled(),
      retriedSubmits: this.submitters.reduce((n, s) => n + s.retried, 0),
      drainMs,
      drained,
      leaseTtlMs,
      diagnostics: [],
    };
    if (!drained || !this.healthy || report.lost > 0 || report.crashes.length > 0) {
      report.diagnostics = [...this.fleet.servers, ...this.fleet.runners].map((p) => p.output.slice(-3_000));
    }
    this.log(
      `submitted ${report.submitted}, completed ${report.completed}, executed more than once ${report.executedMoreThanOnce}, lost ${report.lost}, ` +
        `acknowledged but missing ${report.acknowledgedMissing}, written unacknowledged ${report.writtenUnacknowledged}, crashes ${report.crashes.length}`,
    );
    return report;
  }
}

/** Runs `body` on a fresh fleet and always takes the fleet down. */
async function scenario(name: string, options: SuiteOptions, body: (run: Run) => Promise<void>): Promise<ScenarioReport> {
  const fleet = await Fleet.create(options);
  const run = new Run(name, fleet, options);
  try {
    await body(run);
    return await run.finish();
  } finally {
    for (const s of run.submitters) s.stop();
    await fleet.close();
  }
}

export interface DrainSizes {
  /** One-task jobs queued before the runners start. */
  jobs: number;
  /** How long each task takes, ms (0: a no-op). */
  taskMs: number;
  /** Runner processes. */
  runners: number;
  /** Each runner's concurrency. */
  concurrency: number;
  /** Faults injected during the drain. */
  faults: number;
}

/**
 * Runners SIGKILLed at random during a drain, each replaced by a new one. The
 * tasks the dead runner held come back when their leases run out.
 */
export function runnerKills(options: SuiteOptions, sizes: DrainSizes): Promise<ScenarioReport> {
  return scenario("runner SIGKILLs", options, async (run) => {
    const { fleet } = run;
    const server = await fleet.addServer();
    await run.queue(server, sizes.jobs, sizes.taskMs);
    run.startClock();
    await fleet.addRunners(server, sizes.runners, sizes.concurrency);
    const { leaseTtlMs, slackMs } = options;
    // Leases are returned by lease expiry, which looks at most every few
    // seconds (LeaseExpiryDefaults.maxIntervalMs).
    const boundMs = leaseTtlMs + 5_000 + slackMs;
    const recoveries: Promise<void>[] = [];
    const replacements: Promise<unknown>[] = [];
    for (let i = 0; i < sizes.faults && run.healthy; i++) {
      await run.awaitTarget(run.target(i, sizes.faults, sizes.jobs));
      const started = fleet.runners.filter((r) => r.id !== "");
      const victim = started[Math.floor(run.rand() * started.length)];
      const held = await fleet.runningOn([victim.id]);
      const { computed } = await fleet.progress();
      const at = performance.now();
      await fleet.killRunner(victim);
      replacements.push(fleet.addRunners(server, 1, sizes.concurrency));
      const movedMs = await fleet.movedAfter(at, computed, run.heldCapacity(sizes.concurrency) + 10, boundMs);
      // The dead runner's tasks come back a lease later; the drain goes on meanwhile.
      recoveries.push(
        fleet.computedAfter(at, held, boundMs).then((recoveredMs) => {
          run.record({ what: `SIGKILL runner holding ${held.length} leased tasks`, downMs: 0, movedMs, recoveredMs, boundMs });
        }),
      );
    }
    await Promise.all([...recoveries, ...replacements]);
  });
}

export interface RestartSizes extends DrainSizes {
  /** How long the server stays down before it is started again, ms. */
  restartDelayMs: number;
}

/** Kills `server`, waits, starts it again on the same port; returns the downtime. */
async function killAndRestart(server: ServerProcess, delayMs: number): Promise<{ at: number; downMs: number }> {
  const at = performance.now();
  await server.kill();
  await sleep(delayMs);
  await server.start();
  return { at, downMs: Math.round(performance.now() - at) };
}

/**
 * The server SIGKILLed and restarted on the same port, again and again, under
 * a drain with runners on it. The runners reconnect by themselves and must get
 * work again: with one runner of concurrency 16, 20,000 no-op jobs and 20
 * cycles, this is the starvation loop of issue 18.
 */
export function serverRestarts(options: SuiteOptions, sizes: RestartSizes): Promise<ScenarioReport> {
  return scenario("server SIGKILL and restart", options, async (run) => {
    const { fleet } = run;
    const server = await fleet.addServer();
    await run.queue(server, sizes.jobs, sizes.taskMs);
    run.startClock();
    await fleet.addRunners(server, sizes.runners, sizes.concurrency);
    for (let i = 0; i < sizes.faults && run.healthy; i++) {
      await run.awaitTarget(run.target(i, sizes.faults, sizes.jobs));
      const { at, downMs } = await killAndRestart(server, sizes.restartDelayMs);
      const boundMs = downMs + options.leaseTtlMs + options.slackMs;
      const movedMs = await fleet.everyRunnerMoved(at, fleet.runners, run.freshWork(sizes.concurrency), boundMs);
      run.record({ what: "SIGKILL server, restart", downMs, movedMs, boundMs });
    }
  });
}

/**
 * Two servers on one database, runners on each; one server is SIGKILLed for
 * good. Its runners keep trying it; the tasks they held come back through the
 * surviving server's lease expiry and its runners finish the drain.
 */
export function secondServerKilled(options: SuiteOptions, sizes: DrainSizes): Promise<ScenarioReport> {
  return scenario("second server SIGKILLed", options, async (run) => {
    const { fleet } = run;
    const first = await fleet.addServer();
    const second = await fleet.addServer();
    await run.queue(first, sizes.jobs, sizes.taskMs);
    run.startClock();
    const perServer = Math.max(1, Math.floor(sizes.runners / 2));
    const [, orphans] = await Promise.all([
      fleet.addRunners(first, perServer, sizes.concurrency),
      fleet.addRunners(second, perServer, sizes.concurrency),
    ]);
    await run.awaitTarget(run.target(0, 1, sizes.jobs));
    const held = await fleet.runningOn(orphans.map((r) => r.id));
    const { computed } = await fleet.progress();
    const at = performance.now();
    await second.kill();
    const boundMs = options.leaseTtlMs + 5_000 + options.slackMs;
    const [movedMs, recoveredMs] = await Promise.all([
      fleet.movedAfter(at, computed, run.heldCapacity(sizes.concurrency) + 10, boundMs),
      fleet.computedAfter(at, held, boundMs),
    ]);
    run.record({ what: `SIGKILL one of two servers, its runners holding ${held.length} tasks`, downMs: 0, movedMs, recoveredMs, boundMs });
  });
}

export interface SubmitSizes {
  /** Jobs submitted while the faults happen. */
  submits: number;
  /** At this rate, jobs a second. */
  ratePerSecond: number;
}

/**
 * Every backend of the database terminated (`pg_terminate_backend`), again and
 * again, during a drain while submits keep arriving: the server must survive,
 * its sessions with runners too (or end so that runners reconnect), and the
 * queue must move again.
 */
export function backendTerminations(
  options: SuiteOptions,
  sizes: DrainSizes & {
    /** Jobs a second submitted from the first fault to the last. */
    ratePerSecond: number;
    /** Terminations of every backend, 200 ms apart, in one fault. */
    terminationsPerFault: number;
  },
): Promise<ScenarioReport> {
  return scenario("backends terminated", options, async (run) => {
    const { fleet } = run;
    const server = await fleet.addServer();
    await run.queue(server, sizes.jobs, sizes.taskMs);
    run.startClock();
    await fleet.addRunners(server, sizes.runners, sizes.concurrency);
    const submitter = run.submitter(server, "live", sizes.taskMs);
    // Submits keep coming until the last fault.
    const submitting = submitter.run(Number.POSITIVE_INFINITY, sizes.ratePerSecond);
    for (let i = 0; i < sizes.faults && run.healthy; i++) {
      await run.awaitTarget(run.target(i, sizes.faults, sizes.jobs));
      // While a submit is on its way, if one comes within a second.
      const until = performance.now() + 1_000;
      while (submitter.inFlight === 0 && performance.now() < until) await sleep(1);
      const inFlight = submitter.inFlight;
      const at = performance.now();
      // A burst, so that some termination lands on a statement under way.
      let n = 0;
      for (let k = 0; k < sizes.terminationsPerFault; k++) {
        if (k > 0) await sleep(200);
        n += await fleet.terminateBackends();
      }
      const downMs = Math.round(performance.now() - at);
      const boundMs = downMs + options.leaseTtlMs + options.slackMs;
      const movedMs = await fleet.everyRunnerMoved(at, fleet.runners, run.freshWork(sizes.concurrency), boundMs);
      run.record({ what: `terminated ${n} backends in ${sizes.terminationsPerFault} rounds, ${inFlight} submits in flight`, downMs, movedMs, boundMs });
    }
    submitter.end();
    await run.settle(submitter, submitting);
  });
}

export interface InterruptedSubmitSizes extends SubmitSizes {
  runners: number;
  concurrency: number;
  taskMs: number;
  /** Server kills while submits are in flight. */
  faults: number;
  restartDelayMs: number;
}

/**
 * The server SIGKILLed while submits are on their way, and started again; each
 * failed submit is sent again until acknowledged. Nothing acknowledged may be
 * missing; what was written but never acknowledged is counted.
 */
export function interruptedSubmits(options: SuiteOptions, sizes: InterruptedSubmitSizes): Promise<ScenarioReport> {
  return scenario("submits interrupted", options, async (run) => {
    const { fleet } = run;
    const server = await fleet.addServer();
    run.startClock();
    await fleet.addRunners(server, sizes.runners, sizes.concurrency);
    const submitter = run.submitter(server, "interrupted", sizes.taskMs);
    let submitted = false;
    const submitting = submitter.run(sizes.submits, sizes.ratePerSecond).finally(() => {
      submitted = true;
    });
    for (let i = 0; i < sizes.faults && !submitted && run.healthy; i++) {
      const target = run.target(i, sizes.faults, sizes.submits);
      // The kill lands while a batch is on its way. Submits start at a steady
      // rate whatever the server's state, so the faults are spread over them.
      while (!submitted && (submitter.started < target || submitter.inFlight === 0)) await sleep(1);
      if (submitted) break;
      const inFlight = submitter.inFlight;
      const { at, downMs } = await killAndRestart(server, sizes.restartDelayMs);
      const { computed } = await fleet.progress();
      const boundMs = downMs + options.leaseTtlMs + options.slackMs;
      const movedMs = await fleet.movedAfter(at, computed, run.heldCapacity(sizes.concurrency) + 10, boundMs);
      run.record({ what: `SIGKILL server with ${inFlight} submits in flight, restart`, downMs, movedMs, boundMs });
    }
    // The rest is submitted at the same rate; what failed is sent again until acknowledged.
    await run.settle(submitter, submitting, ((sizes.submits - submitter.acked.size) * 1000) / sizes.ratePerSecond);
  });
}

/**
 * What went wrong in a scenario, one line each; empty when nothing was lost,
 * no completion was counted twice, nothing acknowledged is missing and the
 * queue moved again within the bound after every fault. With `strictSubmits`
 * (no fault can hit a submit, or submits carry idempotency keys), nothing may
 * be written that was not acknowledged either.
 */
export function problems(r: ScenarioReport, strictSubmits: boolean): string[] {
  const out: string[] = [];
  for (const c of r.crashes) out.push(`a process exited by itself: ${c.slice(-1_500)}`);
  for (const u of r.unhandled) out.push(`a server logged an ${u}`);
  for (const f of r.faults) {
    if (f.movedMs === null) out.push(`the queue did not move within ${f.boundMs} ms after: ${f.what}`);
    if (f.recoveredMs === null) out.push(`the tasks the dead process held were not computed within ${f.boundMs} ms after: ${f.what}`);
  }
  if (!r.drained) out.push(`the drain stalled: nothing was computed for ${r.leaseTtlMs} ms plus slack`);
  if (r.lost > 0) out.push(`${r.lost} of ${r.submitted} acknowledged tasks were not computed`);
  if (r.neverExecuted > 0) out.push(`${r.neverExecuted} acknowledged tasks are computed but have no execution record`);
  if (r.completedUnexecuted > 0) out.push(`${r.completedUnexecuted} tasks were completed under a lease no execution names`);
  if (r.miscounted > 0) out.push(`${r.miscounted} jobs count their open tasks wrong (a completion counted twice or not at all)`);
  if (r.failed > 0) out.push(`${r.failed} tasks failed`);
  if (r.acknowledgedMissing > 0) out.push(`${r.acknowledgedMissing} acknowledged jobs are not in the database`);
  if (strictSubmits && r.writtenUnacknowledged > 0) out.push(`${r.writtenUnacknowledged} jobs were written that no acknowledgement names`);
  return out;
}
