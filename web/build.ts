import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const WEB = dirname(fileURLToPath(import.meta.url));
const ROOT = join(WEB, "..");
export const CONSOLE_OUT = join(WEB, "dist");

/** What the build reads: a change to any of these makes the built console stale. */
const INPUTS = [join(WEB, "index.html"), join(WEB, "vite.config.ts"), join(WEB, "src"), join(ROOT, "gen", "sluice"), join(ROOT, "package-lock.json")];

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = info.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/** Whether web/dist is missing or older than a source it was built from. */
export function consoleIsStale(): boolean {
  const built = join(CONSOLE_OUT, "index.html");
  if (!existsSync(built)) return true;
  const builtAt = statSync(built).mtimeMs;
  return INPUTS.some((p) => newestMtime(p) > builtAt);
}

/** Builds the console into web/dist with Vite (no network needed). */
export async function buildConsole(): Promise<void> {
  const { build } = await import("vite");
  await build({ configFile: join(WEB, "vite.config.ts"), logLevel: "warn" });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const ifStale = process.argv.includes("--if-stale");
  if (ifStale && !consoleIsStale()) process.exit(0);
  const started = Date.now();
  await buildConsole();
  console.error(`built the web console into ${CONSOLE_OUT} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
