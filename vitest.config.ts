import { defineConfig } from "vitest/config";
import LongestFirst from "./test/support/sequencer.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    // Each test file gets its own database and servers. Three files at once
    // keep 2 cores busy: much of a file's time is spent waiting on its child
    // processes and on PostgreSQL.
    pool: "forks",
    sequence: { sequencer: LongestFirst },
    maxWorkers: 3,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
