import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type Browser, chromium } from "playwright-core";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Debian's chromium package; Playwright's own browser download needs the internet. */
export const CHROMIUM = process.env.SLUICE_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Flags for a headless Chromium on a machine with a closed network: without
 * the background-networking ones it keeps trying to reach Google's hosts.
 */
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `the browser tests need Debian's Chromium at ${CHROMIUM}, which is missing: install it with \`apt-get install -y chromium\` (.ci/run does this), or set SLUICE_CHROMIUM to another Chromium`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

/** Builds the console into web/dist when it is missing or older than its sources. */
export async function buildConsoleIfStale(): Promise<void> {
  await promisify(execFile)(process.execPath, ["--import", "tsx", join(ROOT, "web", "build.ts"), "--if-stale"], { cwd: ROOT });
}
