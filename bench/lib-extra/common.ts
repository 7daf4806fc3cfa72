/**
 * Helpers shared by bench/schedules.ts, bench/storage.ts and bench/cache.ts:
 * the machine header, databases of their own, a `sluice server` child
 * process, CPU readings from /proc and percentiles.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres, { type Sql } from "postgres";

// The AWS SDK's warning that later versions need Node 22, in this process and its children.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** PostgreSQL to create the benchmark's databases on. */
export const ADMIN_URL = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";

export const quick = process.argv.includes("--quick");

/** The value of `--name VALUE` on the command line, or undefined. */
export function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

export function log(message: string): void {
  console.log(message);
}

/** Prints the machine (CPU model, cores, RAM) and PostgreSQL version. */
export async function printHeader(title: string): Promise<void> {
  const cpu = cpus();
  const sql = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  let pg = "?";
  try {
    const [v] = await sql<{ version: string }[]>`SELECT version()`;
    pg = v.version;
  } finally {
    await sql.end({ timeout: 5 });
  }
  log(`# ${title}${quick ? " (--quick)" : ""}`);
  log(`machine:    ${cpu[0]?.model ?? "?"}, ${cpu.length} cores, ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, ${process.platform} ${process.arch}`);
  log(`postgresql: ${pg}`);
  log(`node:       ${process.version}`);
  log(`started:    ${new Date().toISOString()}`);
}

/** Databases named sluice_bench_<label>_<pid>_<n>, dropped by `dropAll` (also on Ctrl-C). */
export class Databases {
  private n = 0;
  private readonly names = new Set<string>();

  async create(label: string): Promise<{ name: string; url: string }> {
    const name = `sluice_bench_${label}_${process.pid}_${++this.n}`;
    const sql = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(`CREATE DATABASE "${name}"`);
    } finally {
      await sql.end({ timeout: 5 });
    }
    this.names.add(name);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    return { name, url: url.toString() };
  }

  async drop(name: string): Promise<void> {
    const sql = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      this.names.delete(name);
    } finally {
      await sql.end({ timeout: 5 });
    }
  }

  async dropAll(): Promise<void> {
    for (const name of [...this.names]) await this.drop(name).catch((e) => console.error(`could not drop ${name}: ${e}`));
  }
}

/** A `node bin/sluice.js server` child process. */
export interface ServerProcess {
  url: string;
  pid: number;
  process: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();

/** Kills the children this process started (by their pid), e.g. on Ctrl-C. */
export function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

/**
 * Starts `node bin/sluice.js server` on a free port with `DATABASE_URL` and a
 * data folder of its own, and waits for "Sluice is listening on URL".
 */
export async function startServer(databaseUrl: string, env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Promise<ServerProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), "sluice-bench-data-"));
  const proc = spawn(process.execPath, [...nodeArgs, join(ROOT, "bin", "sluice.js"), "server"], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl, SLUICE_PORT: "0", SLUICE_HOST: "127.0.0.1", SLUICE_DATA_DIR: dataDir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  let out = "";
  const onData = (d: Buffer) => {
    out += d;
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  proc.stdout!.on("data", onData);
  proc.stderr!.on("data", onData);
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 60 s:\n${out}`)), 60_000);
    const check = () => {
      const m = /Sluice is listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout!.on("data", check);
    proc.stderr!.on("data", check);
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code ?? signal}) before listening:\n${out}`));
    });
  });
  return {
    url,
    pid: proc.pid!,
    process: proc,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(t);
      }
      children.delete(proc);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** CPU time (user + system) a process has used, in ms, from /proc/PID/stat; NaN if it cannot be read. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** Peak resident set size (VmHWM) of a process, in bytes; NaN if it cannot be read. */
export function peakRss(pid: number | "self"): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** PostgreSQL backends connected to the database `sql` is on, other than `sql`'s own. */
export async function backendPids(sql: Sql): Promise<number[]> {
  const rows = await sql<{ pid: number }[]>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
  return rows.map((r) => r.pid);
}

/** The p-th percentile (0..100) of sorted numbers, nearest rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(values: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.length ? sorted[sorted.length - 1] : NaN };
}

/** Milliseconds as an integer (or one decimal below 10). */
export function ms(x: number): string {
  if (!Number.isFinite(x)) return "n/a";
  return Math.abs(x) < 10 ? x.toFixed(1) : String(Math.round(x));
}

/** Polls `check` until it returns true; false after `timeoutMs`. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Pids of other benchmark runs on this machine (`bench/main.ts` and these scripts), other than this process and its children. */
export function otherBenchmarks(): string[] {
  let out = "";
  try {
    out = execFileSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" });
  } catch {
    return [];
  }
  const mine = new Set([process.pid, process.ppid]);
  const found: string[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [pid, ppid, args] = [Number(m[1]), Number(m[2]), m[3]];
    if (mine.has(pid) || mine.has(ppid)) continue;
    if (/^(\S*node|\S*tsx)\b.*\bbench\/(main|schedules|storage|cache)\.ts\b/.test(args)) found.push(`${pid} ${args.slice(0, 120)}`);
  }
  return found;
}

/** Waits (up to 30 min) until no other benchmark runs, so that two never share the 2 cores. */
export async function waitForQuietMachine(): Promise<void> {
  const deadline = Date.now() + 30 * 60_000;
  let said = 0;
  for (;;) {
    const others = otherBenchmarks();
    if (others.length === 0) return;
    if (Date.now() > deadline) {
      log(`WARNING: still running beside another benchmark:\n  ${others.join("\n  ")}`);
      return;
    }
    if (Date.now() - said > 60_000) {
      said = Date.now();
      log(`waiting for another benchmark to finish:\n  ${others.join("\n  ")}`);
    }
    await sleep(5_000);
  }
}

/** Runs the benchmark body, then the cleanups, also on Ctrl-C; exits 1 when the body threw. */
export async function main(body: (cleanup: (fn: () => Promise<unknown> | unknown) => void) => Promise<void>): Promise<void> {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const runCleanups = async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        console.error(`cleanup failed: ${(e as Error)?.message ?? e}`);
      }
    }
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error("interrupted: cleaning up");
    void runCleanups().finally(() => {
      killChildren();
      process.exit(130);
    });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  if (!process.argv.includes("--no-wait")) await waitForQuietMachine();
  const started = Date.now();
  let failed = false;
  try {
    await body((fn) => cleanups.push(fn));
  } catch (e) {
    failed = true;
    console.error(`benchmark failed: ${(e as Error)?.stack ?? e}`);
  } finally {
    await runCleanups();
    killChildren();
  }
  log(`# took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(failed ? 1 : 0);
}

export interface Emulators {
  /** fauxqs (S3 and SQS) endpoint. */
  s3: string;
  /** The GCS test server's endpoint (apiEndpoint). */
  gcs: string;
  pid: number;
  /** SQS queue URLs by name. */
  queues: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts bench/lib-extra/emulators.ts in a child process with these buckets (in both stores) and SQS queues. */
export async function startEmulators(buckets: string[], queues: string[] = []): Promise<Emulators> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench", "lib-extra", "emulators.ts"), buckets.join(","), queues.join(",")], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
  });
  children.add(child);
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    const onData = (d: Buffer) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        child.stdout!.off("data", onData);
        resolve(out.slice(0, nl));
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`the emulators exited (${code}) before starting`)));
  });
  const info = JSON.parse(line) as Omit<Emulators, "stop">;
  return {
    ...info,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
      children.delete(child);
    },
  };
}
