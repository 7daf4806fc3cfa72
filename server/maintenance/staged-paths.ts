import type { Sql } from "postgres";
import { dropStaleLists } from "../store/path-lists.js";
import { SleepLoop } from "./sleep-loop.js";

export interface StagedPathsConfig {
  /** Staged path lists no job took within this long are deleted. */
  maxAgeMs: number;
  /** How often to look. */
  intervalMs: number;
}

export const StagedPathsDefaults: StagedPathsConfig = {
  maxAgeMs: 86_400_000,
  intervalMs: 3_600_000,
};

/**
 * Deletes path lists staged for a file workflow (StagePaths) that no submit
 * took within a day: a client that staged and went away leaves nothing behind
 * for good. Every server runs it; a list is deleted once whoever gets there first.
 */
export class StagedPathsCleanup {
  private readonly loop: SleepLoop;

  constructor(sql: Sql, config: StagedPathsConfig, onError: (e: unknown) => void) {
    this.loop = new SleepLoop(async () => {
      await dropStaleLists(sql, config.maxAgeMs);
      return config.intervalMs;
    }, onError, config.intervalMs);
  }

  start(): void {
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }
}
