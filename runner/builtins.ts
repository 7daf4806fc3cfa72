import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { StorageLocation } from "./storage.js";
import { Task, type TaskClass } from "./task.js";

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

/** A folder location: an absolute path or a file:// URL. */
export function folderOf(location: string): string {
  const folder = location.startsWith("file://") ? fileURLToPath(location) : location;
  if (!isAbsolute(folder)) throw new TypeError(`location ${JSON.stringify(location)} must be an absolute folder path or a file:// URL`);
  return folder;
}

/**
 * Writes content to a key of a folder: the built-in task behind scheduled
 * object writes. The content goes to a temporary file first and is renamed into
 * place, so a reader (or a folder watcher) never sees half of it.
 */
export class WriteObject extends Task<{ location: string | LocationRef; key: string; content: string }> {
  static identifier = { name: "sluice.WriteObject", version: "v1.0" };

  async execute() {
    const data = Buffer.from(this.input.content, "base64");
    const { location, key } = this.input;
    if (typeof location === "string") await writeFolderObject(folderOf(location), key, data);
    else await StorageLocation.fromRef(location).write(key, data);
  }
}

/** A storage location as a WriteObject task names it. */
export interface LocationRef {
  id: string;
  type: "gcs" | "s3" | "fs";
  location: string;
  endpoint: string;
  region: string;
}

/** Writes `data` to `key` under `folder`, through a temporary file renamed into place. */
export async function writeFolderObject(folder: string, key: string, data: Uint8Array): Promise<void> {
  const path = keyPath(folder, key);
  await mkdir(dirname(path), { recursive: true });
  const temporary = join(dirname(path), `.${randomBytes(6).toString("hex")}.sluice-tmp`);
  try {
    await writeFile(temporary, data);
    await rename(temporary, path);
  } catch (e) {
    await rm(temporary, { force: true });
    throw e;
  }
}

/** Tasks every runner registers unless told not to. */
export const BUILTIN_TASKS: readonly TaskClass[] = [WriteObject];
