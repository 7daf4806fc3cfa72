import { Readable } from "node:stream";
import type { CacheBackend } from "./cache.js";

/**
 * Keeps values in the runner's memory: for development and tests. Only tasks
 * run by the same runner process see each other's values.
 */
export class InMemoryCache implements CacheBackend {
  private readonly values = new Map<string, Uint8Array>();

  async put(path: string, data: Uint8Array): Promise<void> {
    // A copy (Buffer.slice would share memory with the caller).
    this.values.set(path, new Uint8Array(data));
  }

  async putStream(path: string, source: Readable): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of source) chunks.push(Buffer.from(chunk as Uint8Array));
    this.values.set(path, Buffer.concat(chunks));
  }

  async get(path: string): Promise<Uint8Array | undefined> {
    const value = this.values.get(path);
    return value === undefined ? undefined : new Uint8Array(value);
  }

  async getStream(path: string): Promise<Readable | undefined> {
    const value = this.values.get(path);
    return value === undefined ? undefined : Readable.from([Buffer.from(value)]);
  }

  async exists(path: string): Promise<boolean> {
    return this.values.has(path);
  }

  async remove(path: string): Promise<void> {
    this.values.delete(path);
  }

  async list(prefix: string): Promise<string[]> {
    return [...this.values.keys()].filter((k) => k.startsWith(prefix));
  }

  async removeAll(prefix: string): Promise<void> {
    for (const k of this.values.keys()) if (k.startsWith(prefix)) this.values.delete(k);
  }
}
