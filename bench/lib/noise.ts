/**
 * How crowded the CPUs were during a run: a thread that does nothing but wake
 * every millisecond notes each wake-up that came more than 5 ms late, and
 * /proc/stat says how much CPU time the hypervisor took (steal). A late
 * wake-up of a thread that needs almost no CPU means that more threads wanted
 * to run than there were cores, or that the virtual machine was not running:
 * at that moment every process of the benchmark that woke up waited as well.
 * With steal near 0 it is the former. Read the p99 latencies next to it. (On
 * an otherwise idle 2-core machine of ours the thread was late 3 times in
 * 10 s; during Sluice's sustained 1,000/s, 45 to 65 times in 22 s.)
 */
import { readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";

/** What the probe saw between start and stop. */
export interface Noise {
  /** Wake-ups more than 5 ms late. */
  stalls: number;
  /** The latest wake-up, ms late. */
  longestMs: number;
  /** CPU time taken by the hypervisor, % of all CPU time (NaN without /proc/stat). */
  stealPct: number;
}

// The thread runs plain JavaScript: no loader, no imports, its own heap (the
// main thread's garbage collections do not stop it), and no event loop while
// it sleeps: Atomics.wait on a shared word, which the main thread sets and
// notifies to stop it. A wake-up costs a few microseconds; with an interval
// timer it cost 0.12 ms, 8 % of a core at 1,000 wake-ups a second, taken
// from the processes being measured.
const PROBE = `
const { parentPort, workerData } = require("node:worker_threads");
const stop = new Int32Array(workerData);
let stalls = 0, longest = 0, last = performance.now();
while (Atomics.wait(stop, 0, 0, 1) === "timed-out") {
  const t = performance.now();
  const late = t - last - 1;
  if (late > 5) { stalls++; if (late > longest) longest = late; }
  last = t;
}
parentPort.postMessage({ stalls, longestMs: longest });
`;

/** [steal, total] jiffies of all CPUs, or null where /proc/stat cannot be read. */
function cpuJiffies(): [number, number] | null {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
    return [fields[7] ?? 0, fields.reduce((a, b) => a + b, 0)];
  } catch {
    return null;
  }
}

export class NoiseProbe {
  private readonly stopWord = new SharedArrayBuffer(4);
  private readonly worker = new Worker(PROBE, { eval: true, workerData: this.stopWord });
  private readonly startJiffies = cpuJiffies();

  async stop(): Promise<Noise> {
    const seen = new Promise<{ stalls: number; longestMs: number }>((resolve) => this.worker.once("message", resolve));
    const word = new Int32Array(this.stopWord);
    Atomics.store(word, 0, 1);
    Atomics.notify(word, 0);
    const { stalls, longestMs } = await seen;
    await this.worker.terminate();
    const end = cpuJiffies();
    const stealPct = this.startJiffies && end ? (100 * (end[0] - this.startJiffies[0])) / Math.max(1, end[1] - this.startJiffies[1]) : NaN;
    return { stalls, longestMs, stealPct };
  }
}
