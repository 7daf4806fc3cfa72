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

// The thread runs plain JavaScript: no loader, no imports, its own event loop
// and heap (the main thread's garbage collections do not stop it).
const PROBE = `
const { parentPort } = require("node:worker_threads");
let stalls = 0, longest = 0, last = performance.now();
const timer = setInterval(() => {
  const t = performance.now();
  const late = t - last - 1;
  if (late > 5) { stalls++; if (late > longest) longest = late; }
  last = t;
}, 1);
parentPort.once("message", () => {
  clearInterval(timer);
  parentPort.postMessage({ stalls, longestMs: longest });
});
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
  private readonly worker = new Worker(PROBE, { eval: true });
  private readonly startJiffies = cpuJiffies();

  async stop(): Promise<Noise> {
    const seen = new Promise<{ stalls: number; longestMs: number }>((resolve) => this.worker.once("message", resolve));
    this.worker.postMessage("stop");
    const { stalls, longestMs } = await seen;
    await this.worker.terminate();
    const end = cpuJiffies();
    const stealPct = this.startJiffies && end ? (100 * (end[0] - this.startJiffies[0])) / Math.max(1, end[1] - this.startJiffies[1]) : NaN;
    return { stalls, longestMs, stealPct };
  }
}
