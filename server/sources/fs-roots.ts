import { realpath } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";

/** Whether `path` is `root` or inside it (both already resolved). */
function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/**
 * Refuses a folder location outside every allowed root (SLUICE_FS_ROOTS),
 * judged by the folder's real path, so a symbolic link inside a root that
 * points out of it is refused too. A folder that does not exist is left to
 * the reachability check.
 */
export async function checkFsRoot(folder: string, roots: readonly string[]): Promise<void> {
  const real = await realpath(folder).catch(() => resolve(folder));
  for (const root of roots) {
    const realRoot = await realpath(root).catch(() => resolve(root));
    if (within(realRoot, real)) return;
  }
  throw new ConnectError(
    `folder ${folder}${real !== resolve(folder) ? ` (really ${real})` : ""} is outside the folders this server allows (${roots.join(", ") || "none"}): add its root to SLUICE_FS_ROOTS`,
    Code.PermissionDenied,
  );
}
