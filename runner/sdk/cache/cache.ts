import { Readable } from "node:stream";

/**
 * Where a job cache keeps its values: a flat store of paths
 * ("<job id>/<group>/.../<key>") to bytes. Backends apply their own prefix.
 */
export interface CacheBackend {
  put(path: string, data: Uint8Array): Promise<void>;
  /** Stores a value from a stream without holding it whole in memory. */
  putStream(path: string, source: Readable): Promise<void>;
  /** The value, or undefined when there is none. */
  get(path: string): Promise<Uint8Array | undefined>;
  /** A stream of the value, or undefined when there is none. */
  getStream(path: string): Promise<Readable | undefined>;
  exists(path: string): Promise<boolean>;
  /** Deletes a value; deleting a missing one is not an error. */
  remove(path: string): Promise<void>;
  /** Every path under `prefix` (which ends with "/"). */
  list(prefix: string): Promise<string[]>;
  /** Deletes every value under `prefix`. */
  removeAll(prefix: string): Promise<void>;
}

/** Thrown by `get` and `getStream` for a key that has no value. */
export class CacheKeyNotFoundError extends Error {
  readonly code = "not_found";
  constructor(readonly key: string) {
    super(`job cache has no value for key ${JSON.stringify(key)}; check has(key) first, or set it in a task this one depends on`);
    this.name = "CacheKeyNotFoundError";
  }
}

const MAX_KEY_LENGTH = 1024;

/**
 * Checks a key or group name: 1 to 1024 characters, "/" only between
 * non-empty segments, no "." or ".." segment (which could climb out of the
 * job's scope on a file system), no backslash or NUL.
 */
export function checkKey(key: string, what = "key"): string {
  const bad = (why: string) => new TypeError(`job cache ${what} ${JSON.stringify(key)} is invalid: ${why}`);
  if (typeof key !== "string" || key.length === 0) throw bad("it is empty");
  if (key.length > MAX_KEY_LENGTH) throw bad(`it is longer than ${MAX_KEY_LENGTH} characters`);
  if (/[\\\0]/.test(key)) throw bad("it contains a backslash or NUL character");
  for (const segment of key.split("/")) {
    if (segment === "") throw bad('it has an empty segment (a leading, trailing or doubled "/")');
    if (segment === "." || segment === "..") throw bad(`"${segment}" segments are not allowed`);
  }
  return key;
}

export type StreamSource = Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A job's cache, or a group inside it: values (bytes) by string key. Keys are
 * scoped to the job, so two jobs never see each other's values, and a group is
 * a scope inside it: `cache.group("a").set("b", v)` is `cache.set("a/b", v)`.
 */
export class JobCache {
  constructor(
    private readonly backend: CacheBackend,
    /** The scope's path prefix, ending with "/". */
    private readonly scope: string,
  ) {}

  /** The cache of one job. */
  static forJob(backend: CacheBackend, jobId: string): JobCache {
    return new JobCache(backend, `${checkKey(jobId, "job id")}/`);
  }

  private path(key: string): string {
    return this.scope + checkKey(key);
  }

  /** A cache scoped under `name` inside this one; groups nest. */
  group(name: string): JobCache {
    return new JobCache(this.backend, `${this.scope}${checkKey(name, "group name")}/`);
  }

  async set(key: string, value: Uint8Array): Promise<void> {
    if (!(value instanceof Uint8Array)) throw new TypeError(`job cache values are bytes (Uint8Array); use setText or setJson for ${typeof value} values`);
    await this.backend.put(this.path(key), value);
  }

  /** The value of `key`; throws CacheKeyNotFoundError when there is none. */
  async get(key: string): Promise<Uint8Array> {
    const value = await this.backend.get(this.path(key));
    if (value === undefined) throw new CacheKeyNotFoundError(key);
    return value;
  }

  async has(key: string): Promise<boolean> {
    return this.backend.exists(this.path(key));
  }

  async delete(key: string): Promise<void> {
    await this.backend.remove(this.path(key));
  }

  /** Every key in this scope, those inside groups as "group/key", sorted. */
  async keys(): Promise<string[]> {
    return (await this.backend.list(this.scope)).map((p) => p.slice(this.scope.length)).sort();
  }

  /** Stores a value from a stream (a Node stream or any iterable of chunks) without holding it whole in memory. */
  async setStream(key: string, source: StreamSource): Promise<void> {
    const readable = source instanceof Readable ? source : Readable.from(source as AsyncIterable<Uint8Array>, { objectMode: false });
    await this.backend.putStream(this.path(key), readable);
  }

  /** A stream of the value of `key`; throws CacheKeyNotFoundError when there is none. */
  async getStream(key: string): Promise<Readable> {
    const stream = await this.backend.getStream(this.path(key));
    if (stream === undefined) throw new CacheKeyNotFoundError(key);
    return stream;
  }

  async setText(key: string, text: string): Promise<void> {
    await this.set(key, encoder.encode(text));
  }

  async getText(key: string): Promise<string> {
    return decoder.decode(await this.get(key));
  }

  async setJson(key: string, value: unknown): Promise<void> {
    await this.setText(key, JSON.stringify(value));
  }

  async getJson<T = unknown>(key: string): Promise<T> {
    return JSON.parse(await this.getText(key)) as T;
  }

  /** Deletes every value in this scope (the whole job's cache, for a job's cache). */
  async clear(): Promise<void> {
    await this.backend.removeAll(this.scope);
  }
}

/** Normalises a backend's key prefix: empty, or checked and ending with "/". */
export function normalizePrefix(prefix: string | undefined): string {
  if (!prefix) return "";
  const trimmed = prefix.replace(/^\/+|\/+$/g, "");
  return trimmed === "" ? "" : `${checkKey(trimmed, "prefix")}/`;
}
