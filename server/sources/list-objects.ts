import { opendir } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import type { LocationRow } from "../store/storage-locations.js";
import { type StorageClients, gcsBucket, s3Client } from "./locations.js";

/** An object found by a listing: its path as a file task gets it, and its size. */
export interface ListedObject {
  /** Folders: the file's absolute path; buckets: the object's key. */
  path: string;
  /** The key relative to the location (what globs match). */
  key: string;
  size: number;
}

/**
 * The objects of a location whose keys start with `prefix`, page by page (at
 * most `pageSize` each), never the whole listing in memory: a folder is read
 * one directory entry at a time, a bucket one listing page at a time.
 */
export async function* listObjects(location: LocationRow, prefix: string, clients: StorageClients, pageSize: number): AsyncGenerator<ListedObject[]> {
  let page: ListedObject[] = [];
  const add = (o: ListedObject) => {
    if (!o.key.startsWith(prefix)) return null;
    page.push(o);
    if (page.length < pageSize) return null;
    const full = page;
    page = [];
    return full;
  };
  if (location.type === "fs") {
    const { stat } = await import("node:fs/promises");
    for await (const e of await opendir(location.location, { recursive: true, bufferSize: 256 })) {
      if (!e.isFile() || e.name.endsWith(".sluice-tmp")) continue;
      const path = join((e as unknown as { parentPath?: string; path: string }).parentPath ?? (e as unknown as { path: string }).path, e.name);
      const key = relative(location.location, path).split(sep).join("/");
      if (!key.startsWith(prefix)) continue;
      const s = await stat(path).catch(() => null);
      if (!s) continue;
      const full = add({ path, key, size: s.size });
      if (full) yield full;
    }
  } else if (location.type === "s3") {
    const client = await s3Client(location);
    const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
    try {
      let token: string | undefined;
      do {
        const res = await client.send(new ListObjectsV2Command({ Bucket: location.location, Prefix: prefix || undefined, ContinuationToken: token }));
        for (const o of res.Contents ?? []) {
          if (!o.Key) continue;
          const full = add({ path: o.Key, key: o.Key, size: o.Size ?? 0 });
          if (full) yield full;
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
    } finally {
      client.destroy();
    }
  } else {
    const bucket = await gcsBucket(location, clients);
    let query: { prefix?: string; pageToken?: string; autoPaginate: false; maxResults: number } | null = {
      prefix: prefix || undefined,
      autoPaginate: false,
      maxResults: 1000,
    };
    while (query) {
      const [files, next]: [{ name: string; metadata: { size?: string | number } }[], { pageToken?: string } | null | undefined] =
        (await bucket.getFiles(query)) as never;
      for (const f of files) {
        const full = add({ path: f.name, key: f.name, size: Number(f.metadata.size ?? 0) });
        if (full) yield full;
      }
      query = next?.pageToken ? { ...query, pageToken: next.pageToken } : null;
    }
  }
  if (page.length > 0) yield page;
}
