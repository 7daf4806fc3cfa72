/** Objects of a folder location: keys resolved safely under the folder, and whole-file writes. */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, realpath, rename, rm, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve, sep } from "node:path";

/** Resolves `key` under `root`, refusing keys that are absolute, empty or climb out with "..". */
export function keyPath(root: string, key: string): string {
  const segments = key.split("/");
  if (key === "" || isAbsolute(key) || segments.some((s) => s === "" || s === "." || s === "..")) {
    throw new TypeError(`key ${JSON.stringify(key)} is invalid: use a relative path such as "reports/today.txt", without empty, "." or ".." segments`);
  }
  const path = resolve(root, ...segments);
  if (!path.startsWith(resolve(root) + sep)) throw new TypeError(`key ${JSON.stringify(key)} leads out of ${root}`);
  return path;
}

/** Refuses a path whose real location (symbolic links followed) is outside `folder`'s. */
async function insideReally(folder: string, path: string, key: string): Promise<void> {
  const [real, root] = await Promise.all([realpath(path), realpath(folder)]);
  if (real !== root && !real.startsWith(root + sep)) {
    throw new TypeError(`key ${JSON.stringify(key)} leads out of ${folder} through a symbolic link`);
  }
}

/** Reads `key` under `folder`; a symbolic link that leads out of the folder is refused. */
export async function readFolderObject(folder: string, key: string): Promise<Buffer> {
  const path = keyPath(folder, key);
  await insideReally(folder, path, key);
  return readFile(path);
}

/** Writes `data` to `key` under `folder`, through a temporary file renamed into place. */
export async function writeFolderObject(folder: string, key: string, data: Uint8Array): Promise<void> {
  const path = keyPath(folder, key);
  await mkdir(dirname(path), { recursive: true });
  // Renaming onto a link replaces the link; a linked folder on the way would be followed.
  await insideReally(folder, dirname(path), key);
  const temporary = join(dirname(path), `.${randomBytes(6).toString("hex")}.sluice-tmp`);
  try {
    await writeFile(temporary, data);
    await rename(temporary, path);
  } catch (e) {
    await rm(temporary, { force: true });
    throw e;
  }
}
