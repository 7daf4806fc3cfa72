import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./child.js";

/**
 * Builds the sluice and sluice-server packages (scripts/pack.ts, without
 * packing them) and returns the command that runs the server as an installed
 * sluice-server does: its compiled JavaScript with plain Node. The server
 * imports the SDK by its package name, so dist/node_modules/sluice points at
 * the built SDK; every other dependency resolves from the repository's
 * node_modules.
 */
export function buildServerPackage(): string[] {
  console.error("building the sluice-server package (scripts/pack.ts --no-pack)");
  execFileSync(process.execPath, ["--import", "tsx", join(ROOT, "scripts", "pack.ts"), "--no-pack"], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
  const modules = join(ROOT, "dist", "node_modules");
  mkdirSync(modules, { recursive: true });
  const sdk = join(modules, "sluice");
  if (existsSync(sdk)) rmSync(sdk, { recursive: true, force: true });
  symlinkSync(join("..", "sluice"), sdk, "dir");
  return [join(ROOT, "dist", "sluice-server", "server", "cli.js")];
}
