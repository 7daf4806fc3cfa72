import { readFileSync } from "node:fs";

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The p-th percentile (0..100) of already sorted numbers (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(latencies: Float64Array | number[]): LatencySummary {
  const sorted = Float64Array.from(latencies).sort();
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length === 0 ? NaN : sorted[sorted.length - 1],
  };
}

/** Peak resident set size of a process in bytes (VmHWM), or NaN when it cannot be read. */
export function peakRss(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A growable list of doubles (latencies), cheap for hundreds of thousands of entries. */
export class Samples {
  private data = new Float64Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }

  toArray(): number[] {
    return Array.from(this.data.subarray(0, this.length));
  }
}

export const fmt = {
  rate: (x: number) => (Number.isFinite(x) ? String(Math.round(x)) : "n/a"),
  ms: (x: number) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : "n/a"),
  mb: (bytes: number) => (Number.isFinite(bytes) ? (bytes / 1024 / 1024).toFixed(0) : "n/a"),
  ratio: (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "n/a"),
};

/** CPU time (user + system) a process has used so far, in ms, or NaN when it cannot be read. */
export function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which is in parentheses and may hold spaces).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** USER_HZ: 100 on Linux unless the kernel says otherwise. */
const CLOCK_TICKS = 100;

/** CPU used by groups of processes between `start()` and `stop()`. */
export class CpuMeter {
  private readonly begin = new Map<number, number>();

  /** Reads the current CPU time of `pids`; pids not seen at start count from 0. */
  start(pids: readonly number[]): void {
    for (const pid of pids) this.begin.set(pid, cpuMs(pid));
  }

  used(pids: readonly number[]): number {
    let total = 0;
    for (const pid of pids) {
      const now = cpuMs(pid);
      if (Number.isFinite(now)) total += now - (this.begin.get(pid) ?? 0);
    }
    return total;
  }
}
