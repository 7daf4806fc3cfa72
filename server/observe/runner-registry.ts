import { randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import type { RunnerStream } from "../dispatch/runner-stream.js";
import type { Capability } from "../store/lease-tasks.js";
import { runnerConnected, runnerDisconnected, touchRunners } from "../store/runners.js";
import { SleepLoop } from "../maintenance/sleep-loop.js";

export interface RunnerRegistryConfig {
  /** How often a server writes when its runners were last heard and what they hold. */
  touchIntervalMs: number;
}

export const RunnerRegistryDefaults: RunnerRegistryConfig = {
  touchIntervalMs: 5_000,
};

/** A runner is listed while its server said this recently that its session is open. */
export function freshnessMs(config: RunnerRegistryConfig): number {
  return 3 * config.touchIntervalMs;
}

/** What a runner said about itself in its session's start. */
export interface RunnerSelf {
  name: string;
  host: string;
  concurrency: number;
  prefetch: number;
  capabilities: readonly Capability[];
}

interface Session {
  sessionId: string;
  /** When the runner last sent a message, in epoch ms (set per message: no statement). */
  lastHeard: number;
}

/**
 * The runners connected to this server, kept in the `runners` table that all
 * servers of the database share: a row written when a session starts and
 * deleted when it ends, and one statement every `touchIntervalMs` for all of
 * this server's runners (when each was last heard, what it holds). Nothing
 * is written per message or per result.
 */
export class RunnerRegistry {
  private readonly sessions = new Map<RunnerStream, Session>();
  private readonly loop: SleepLoop;
  private readonly serverId = randomUUID();

  constructor(
    private readonly sql: Sql,
    private readonly config: RunnerRegistryConfig,
    private readonly onError: (e: unknown) => void,
  ) {
    this.loop = new SleepLoop(async () => {
      await this.touch();
      return config.touchIntervalMs;
    }, onError, config.touchIntervalMs);
  }

  start(): void {
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }

  /** Runners with an open session on this server. */
  get connected(): number {
    return this.sessions.size;
  }

  /** A runner's session started on this stream. */
  async connect(stream: RunnerStream, self: RunnerSelf): Promise<void> {
    const session = { sessionId: randomUUID(), lastHeard: Date.now() };
    this.sessions.set(stream, session);
    await runnerConnected(this.sql, {
      id: stream.runnerId,
      sessionId: session.sessionId,
      serverId: this.serverId,
      name: self.name,
      host: self.host,
      clusterId: stream.clusterId,
      tasks: self.capabilities,
      concurrency: self.concurrency,
      prefetch: self.prefetch,
      inFlight: stream.holding,
    });
  }

  /** The runner sent a message. */
  heard(stream: RunnerStream): void {
    const s = this.sessions.get(stream);
    if (s) s.lastHeard = Date.now();
  }

  /** The runner's session on this stream ended. */
  disconnect(stream: RunnerStream): void {
    const s = this.sessions.get(stream);
    if (!s) return;
    this.sessions.delete(stream);
    runnerDisconnected(this.sql, stream.runnerId, s.sessionId).catch(this.onError);
  }

  private async touch(): Promise<void> {
    const rows = [...this.sessions].map(([stream, s]) => ({ sessionId: s.sessionId, lastHeard: new Date(s.lastHeard), inFlight: stream.holding }));
    await touchRunners(this.sql, rows, 12 * this.config.touchIntervalMs);
  }
}
