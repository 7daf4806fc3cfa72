import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The last bytes of a child's output kept for reports (a drain's warnings can run long). */
const OUTPUT_KEPT = 64 * 1024;

/** A child process with the tail of its output kept. */
class Child {
  readonly process: ChildProcess;
  readonly exited: Promise<void>;
  private out = "";
  private waiters: (() => void)[] = [];

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    // bin/sluice.js registers tsx itself, as it does for users.
    const nodeArgs = args[0].endsWith(".js") ? args : ["--import", "tsx", ...args];
    this.process = spawn(process.execPath, nodeArgs, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const keep = (d: Buffer) => {
      this.out = (this.out + d.toString()).slice(-OUTPUT_KEPT);
      for (const w of this.waiters.splice(0)) w();
    };
    this.process.stdout!.on("data", keep);
    this.process.stderr!.on("data", keep);
    this.exited = new Promise((resolve) =>
      this.process.once("exit", () => {
        for (const w of this.waiters.splice(0)) w();
        resolve();
      }),
    );
  }

  get alive(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  get output(): string {
    return this.out;
  }

  /** Resolves with the first match of `pattern` in the output; rejects if the process exits first. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        done = true;
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}; output:\n${this.out}`));
      }, timeoutMs);
      let done = false;
      const check = () => {
        if (done) return;
        const m = this.out.match(pattern);
        if (m) {
          done = true;
          clearTimeout(timer);
          resolve(m);
        } else if (!this.alive) {
          done = true;
          clearTimeout(timer);
          reject(new Error(`process exited (${this.process.exitCode ?? this.process.signalCode}) before printing ${pattern}:\n${this.out}`));
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  async kill(): Promise<void> {
    if (this.alive) this.process.kill("SIGKILL");
    await this.exited;
  }
}

/** A port that was free a moment ago, so that a server can be restarted on the same one. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** How long a server or runner process may take to start on a busy machine. */
const START_TIMEOUT_MS = 60_000;

/**
 * A process of the suite that it starts, kills and restarts. Exits it did not
 * ask for are kept as crashes, with the end of the process's output.
 */
abstract class Managed {
  protected child: Child | null = null;
  private readonly killed = new WeakSet<Child>();
  readonly crashes: string[] = [];

  protected abstract describe(): string;

  protected spawn(args: string[], env: NodeJS.ProcessEnv): Child {
    const child = new Child(args, env);
    this.child = child;
    void child.exited.then(() => {
      if (this.killed.has(child)) return;
      const how = child.process.exitCode ?? child.process.signalCode;
      this.crashes.push(`${this.describe()} exited (${how}):\n${child.output.slice(-4000)}`);
    });
    return child;
  }

  get alive(): boolean {
    return this.child?.alive ?? false;
  }

  /** SIGKILL: no shutdown, connections cut, whatever was in flight ends where it was. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.killed.add(child);
    await child.kill();
  }

  get output(): string {
    return this.child?.output ?? "";
  }
}

/** `sluice server` as users run it, on a fixed port so that runners and clients find it again after a restart. */
export class ServerProcess extends Managed {
  readonly url: string;

  constructor(
    readonly port: number,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    super();
    this.url = `http://127.0.0.1:${port}`;
  }

  /** What the server logged as unhandled rejections (each a bug: an error nobody awaited). */
  readonly unhandled: string[] = [];

  protected describe(): string {
    return `server on port ${this.port}`;
  }

  async start(): Promise<void> {
    const child = this.spawn([join(ROOT, "bin", "sluice.js"), "server"], { ...this.env, SLUICE_HOST: "127.0.0.1", SLUICE_PORT: String(this.port) });
    child.process.stderr!.on("data", (d: Buffer) => {
      const text = d.toString();
      const at = text.indexOf("unhandled rejection");
      if (at !== -1) this.unhandled.push(text.slice(at, at + 1_500));
    });
    await child.waitFor(/listening on http/, START_TIMEOUT_MS);
  }
}

/** A runner process (fault-runner.ts) on one server. */
export class RunnerProcess extends Managed {
  /** The runner's id, as tasks leased to it carry it in `tasks.runner_id`. */
  id = "";

  constructor(
    readonly server: ServerProcess,
    readonly concurrency: number,
    /** The file its tasks append their execution records to. */
    readonly records: string,
  ) {
    super();
  }

  protected describe(): string {
    return `runner ${this.id || "(starting)"} of ${this.server.url}`;
  }

  async start(): Promise<void> {
    const child = this.spawn([join(ROOT, "test", "faults", "fault-runner.ts")], {
      SLUICE_URL: this.server.url,
      FAULT_CONCURRENCY: String(this.concurrency),
      FAULT_RECORDS: this.records,
    });
    const [, id] = await child.waitFor(/fault runner (\S+) running/, START_TIMEOUT_MS);
    this.id = id;
  }
}
