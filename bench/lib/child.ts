import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FromChild, ToChild } from "./protocol.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A child process with an IPC channel and its output kept for error messages. */
export class Child {
  readonly process: ChildProcess;
  private out = "";
  private readonly listeners = new Set<(m: FromChild) => void>();
  private readonly lineWaiters = new Set<() => void>();
  readonly exited: Promise<number | string>;

  constructor(
    readonly label: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    options: { echo?: boolean; nodeArgs?: string[] } = {},
  ) {
    // bin/sluice.js registers tsx itself; our .ts children need the loader.
    const nodeArgs = args[0]?.endsWith(".js") ? args : ["--import", "tsx", ...args];
    this.process = spawn(process.execPath, [...(options.nodeArgs ?? []), ...nodeArgs], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    const keep = (d: Buffer) => {
      const s = d.toString();
      this.out = (this.out + s).slice(-20_000);
      if (options.echo) process.stderr.write(s.replace(/^(?=.)/gm, `[${label}] `));
      for (const w of [...this.lineWaiters]) w();
    };
    this.process.stdout!.on("data", keep);
    this.process.stderr!.on("data", keep);
    this.process.on("message", (m) => {
      for (const l of [...this.listeners]) l(m as FromChild);
    });
    this.exited = new Promise((resolve) =>
      this.process.once("exit", (code, signal) => {
        for (const w of [...this.lineWaiters]) w();
        resolve(code ?? signal ?? -1);
      }),
    );
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get output(): string {
    return this.out;
  }

  get alive(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  send(message: ToChild): void {
    if (this.alive && this.process.connected) this.process.send(message);
  }

  on(listener: (m: FromChild) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the first message of the given type. */
  next<T extends FromChild["type"]>(type: T, timeoutMs = 60_000): Promise<Extract<FromChild, { type: T }>> {
    const proc = this.process;
    return new Promise((resolve, reject) => {
      const done = (err?: Error, value?: Extract<FromChild, { type: T }>) => {
        clearTimeout(timer);
        off();
        proc.off("exit", onExit);
        if (err) reject(err);
        else resolve(value!);
      };
      const timer = setTimeout(() => done(new Error(`${this.label}: no "${type}" message within ${timeoutMs} ms\n${this.out}`)), timeoutMs);
      const off = this.on((m) => {
        if (m.type === "error") done(new Error(`${this.label}: ${m.message}\n${this.out}`));
        else if (m.type === type) done(undefined, m as Extract<FromChild, { type: T }>);
      });
      const onExit = () => done(new Error(`${this.label} exited (${proc.exitCode ?? proc.signalCode}) before "${type}"\n${this.out}`));
      proc.once("exit", onExit);
    });
  }

  /** Resolves when the output matches `pattern`. */
  waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`${this.label}: timed out waiting for ${pattern}\n${this.out}`)), timeoutMs);
      const check = () => {
        const m = this.out.match(pattern);
        if (m) finish(undefined, m);
        else if (!this.alive) finish(new Error(`${this.label} exited before printing ${pattern}\n${this.out}`));
      };
      const finish = (err?: Error, m?: RegExpMatchArray) => {
        clearTimeout(timer);
        this.lineWaiters.delete(check);
        if (err) reject(err);
        else resolve(m!);
      };
      this.lineWaiters.add(check);
      check();
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async kill(graceMs = 10_000): Promise<void> {
    if (!this.alive) return;
    this.process.kill("SIGTERM");
    const timer = setTimeout(() => this.alive && this.process.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Children still running, ended when the benchmark exits early. */
export const allChildren = new Set<Child>();

export function track(child: Child): Child {
  allChildren.add(child);
  void child.exited.then(() => allChildren.delete(child));
  return child;
}

/** Reports `progress` messages of several runners as one total. */
export class ProgressTotal {
  private readonly executed = new Map<Child, number>();
  lastAt = 0;
  private readonly waiters: { n: number; resolve: () => void }[] = [];

  constructor(children: readonly Child[]) {
    for (const c of children) {
      this.executed.set(c, 0);
      c.on((m) => {
        if (m.type !== "progress") return;
        this.executed.set(c, m.executed);
        this.lastAt = Math.max(this.lastAt, m.lastAt);
        const total = this.total;
        for (const w of [...this.waiters]) {
          if (total >= w.n) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      });
    }
  }

  get total(): number {
    let t = 0;
    for (const n of this.executed.values()) t += n;
    return t;
  }

  /** Resolves once the runners together began `n` tasks; rejects after `timeoutMs`. */
  reach(n: number, timeoutMs: number): Promise<void> {
    if (this.total >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { n, resolve: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`only ${this.total} of ${n} tasks were started within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
}
