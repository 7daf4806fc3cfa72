import type { FromChild, ToChild } from "./protocol.js";
import { Samples, now } from "./util.js";

/** The child's side of the IPC channel; resolves once the message was handed to the channel. */
export function sendToParent(message: FromChild): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/**
 * Counts task starts and their submit-to-start latencies in a worker process,
 * and tells the parent how far it got every 20 ms while that changes.
 */
export class Recorder {
  executed = 0;
  lastAt = 0;
  readonly latencies = new Samples();
  private sent = -1;
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.timer = setInterval(() => this.flush(), 20);
  }

  /** A task began; `submittedAt` is the wall-clock time carried in its input, if any. */
  started(submittedAt: unknown): void {
    const t = now();
    this.executed++;
    this.lastAt = t;
    if (typeof submittedAt === "number") this.latencies.push(t - submittedAt);
  }

  flush(): void {
    if (this.sent === this.executed) return;
    this.sent = this.executed;
    void sendToParent({ type: "progress", executed: this.executed, lastAt: this.lastAt });
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}

/**
 * Runs the usual life of a worker process: say "loaded", wait for "start",
 * call `start`, wait for "stop" (or SIGTERM), call `stop`, send the stats, exit.
 */
export function lifecycle(hooks: { start(): Promise<void> | void; stop(): Promise<void> }, recorder: Recorder): void {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await hooks.stop();
      recorder.close();
      await sendToParent({ type: "stats", executed: recorder.executed, latencies: recorder.latencies.toArray() });
    } catch (e) {
      await sendToParent({ type: "error", message: String((e as Error)?.stack ?? e) });
    }
    process.disconnect?.();
    setTimeout(() => process.exit(0), 100).unref();
  };
  process.on("message", (m: ToChild) => {
    if (m.type === "start") {
      Promise.resolve()
        .then(() => {
          void sendToParent({ type: "started", at: now() });
          return hooks.start();
        })
        .catch((e) => void sendToParent({ type: "error", message: String((e as Error)?.stack ?? e) }));
    } else if (m.type === "stop") {
      void stop();
    }
  });
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
  // The parent went away: do not linger.
  process.once("disconnect", () => {
    if (!stopping) void stop();
  });
  void sendToParent({ type: "loaded" });
}
