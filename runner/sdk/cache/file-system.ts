import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type CacheBackend, normalizePrefix } from "./cache.js";
import { Retention, type RetentionOptions } from "./retention.js";

export interface LocalFileSystemCacheOptions extends RetentionOptions {
  /** A folder inside `root` for every value. */
  prefix?: string;
}

const TEMPORARY = ".sluice-tmp";

const missing = (e: unknown) => (e as NodeJS.ErrnoException).code === "ENOENT";

/**
 * Keeps values as files under a folder (a shared volume, for runners on
 * several machines). A value is written to a temporary file and renamed into
 * place, so a reader never sees half of it.
 */
export class LocalFileSystemCache implements CacheBackend {
  readonly root: string;
  private readonly base: string;
  private readonly retention: Retention;

  constructor(root: string, options: LocalFileSystemCacheOptions = {}) {
    this.root = resolve(root);
    this.base = join(this.root, normalizePrefix(options.prefix));
    this.retention = new Retention(options, () => this.jobsLastWritten(), (job) => this.removeAll(`${job}/`));
  }

  private file(path: string): string {
    const file = resolve(this.base, ...path.split("/"));
    if (!file.startsWith(this.base.endsWith(sep) ? this.base : this.base + sep)) throw new TypeError(`cache path ${path} leads out of ${this.base}`);
    return file;
  }

  private async temporary(): Promise<string> {
    const dir = join(this.root, TEMPORARY);
    await mkdir(dir, { recursive: true });
    return join(dir, randomBytes(8).toString("hex"));
  }

  private async place(temporary: string, path: string): Promise<void> {
    const file = this.file(path);
    await mkdir(dirname(file), { recursive: true });
    await rename(temporary, file);
    this.retention.touched();
  }

  async put(path: string, data: Uint8Array): Promise<void> {
    const tmp = await this.temporary();
    try {
      await writeFile(tmp, data);
      await this.place(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async putStream(path: string, source: Readable): Promise<void> {
    const tmp = await this.temporary();
    try {
      await pipeline(source, createWriteStream(tmp));
      await this.place(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async get(path: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.file(path));
    } catch (e) {
      if (missing(e) || (e as NodeJS.ErrnoException).code === "EISDIR") return undefined;
      throw e;
    }
  }

  async getStream(path: string): Promise<Readable | undefined> {
    try {
      // Opened first, so that a missing value is known before a stream is returned.
      const handle = await open(this.file(path), "r");
      return handle.createReadStream({ autoClose: true });
    } catch (e) {
      if (missing(e)) return undefined;
      throw e;
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      return (await stat(this.file(path))).isFile();
    } catch (e) {
      if (missing(e)) return false;
      throw e;
    }
  }

  async remove(path: string): Promise<void> {
    await rm(this.file(path), { force: true });
  }

  async list(prefix: string): Promise<string[]> {
    const dir = this.file(prefix.replace(/\/$/, ""));
    let entries;
    try {
      entries = await readdir(dir, { recursive: true, withFileTypes: true });
    } catch (e) {
      if (missing(e)) return [];
      throw e;
    }
    return entries
      .filter((e) => e.isFile())
      .map((e) => prefix + relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).split(sep).join("/"));
  }

  async removeAll(prefix: string): Promise<void> {
    await rm(this.file(prefix.replace(/\/$/, "")), { recursive: true, force: true });
  }

  /** When each job's folder was last written to. */
  private async jobsLastWritten(): Promise<Map<string, Date>> {
    const out = new Map<string, Date>();
    let jobs;
    try {
      jobs = await readdir(this.base, { withFileTypes: true });
    } catch (e) {
      if (missing(e)) return out;
      throw e;
    }
    for (const job of jobs) {
      if (!job.isDirectory() || job.name === TEMPORARY) continue;
      let newest = (await stat(join(this.base, job.name))).mtime;
      for (const file of await this.list(`${job.name}/`)) {
        const { mtime } = await stat(this.file(file));
        if (mtime > newest) newest = mtime;
      }
      out.set(job.name, newest);
    }
    return out;
  }

  /** Deletes the caches of jobs not written to for the retention period now. */
  prune(): Promise<string[]> {
    return this.retention.prune();
  }
}
