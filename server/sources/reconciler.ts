import { readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import type { Sql } from "postgres";
import { type ObjectChangeIn, recordObjectEvents } from "./events.js";
import { SleepLoop } from "../maintenance/sleep-loop.js";
import { type LocationRow, claimDueListing, markListed, nextListingDue } from "../store/storage-locations.js";
import { type StorageClients, gcsBucket, s3Client } from "./locations.js";

/** Objects modified this long before the last listing are looked at again (clock skew, slow writes). */
const OVERLAP_MS = 60_000;
const MAX_SLEEP_MS = 60_000;

/** Objects of a location modified at or after `since`. */
export async function listChanged(location: LocationRow, since: Date, clients: StorageClients): Promise<ObjectChangeIn[]> {
  const out: ObjectChangeIn[] = [];
  if (location.type === "fs") {
    const entries = await readdir(location.location, { recursive: true, withFileTypes: true });
    for (const e of entries) {
      if (!e.isFile() || e.name.endsWith(".sluice-tmp")) continue;
      const path = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
      const s = await stat(path).catch(() => null);
      if (!s || s.mtime < since) continue;
      out.push({ key: relative(location.location, path).split(sep).join("/"), version: `${Math.round(s.mtimeMs * 1000)}-${s.size}`, modifiedAt: s.mtime });
    }
  } else if (location.type === "s3") {
    const client = await s3Client(location);
    const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
    try {
      let token: string | undefined;
      do {
        const res = await client.send(new ListObjectsV2Command({ Bucket: location.location, ContinuationToken: token }));
        for (const o of res.Contents ?? []) {
          if (!o.Key || !o.LastModified || o.LastModified < since) continue;
          out.push({ key: o.Key, version: o.ETag ?? "", modifiedAt: o.LastModified });
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
    } finally {
      client.destroy();
    }
  } else {
    const [files] = await (await gcsBucket(location, clients)).getFiles({ autoPaginate: true });
    for (const f of files) {
      const updated = new Date(String(f.metadata.updated ?? 0));
      if (updated < since) continue;
      const metageneration = Number(f.metadata.metageneration ?? 1);
      out.push({ key: f.name, version: `${f.metadata.generation}${metageneration > 1 ? `.${metageneration}` : ""}`, modifiedAt: updated });
    }
  }
  return out.filter((c) => c.version !== "");
}

/**
 * Lists each storage location every `reconcile_interval_s` and submits jobs
 * for objects whose events never arrived, so that a lost notification only
 * delays a job. One server takes each listing (SKIP LOCKED on the location
 * row); each listing covers what changed since the previous one. Between
 * listings it sleeps until the next is due.
 */
export class Reconciler {
  private readonly loop: SleepLoop;

  constructor(
    private readonly sql: Sql,
    private readonly clients: StorageClients,
    onError: (e: unknown) => void,
  ) {
    this.loop = new SleepLoop(() => this.pass(), onError);
  }

  start(): void {
    this.loop.start();
  }

  /** Look again within `ms` (after locations changed, say). */
  wake(ms: number): void {
    this.loop.wake(ms);
  }

  stop(): void {
    this.loop.stop();
  }

  /** Lists every location that is due; sleeps until the next is. */
  private async pass(): Promise<number> {
    for (;;) {
      if (this.loop.isStopped) return MAX_SLEEP_MS;
      const location = await claimDueListing(this.sql);
      if (!location) break;
      const startedAt = new Date();
      const changes = await listChanged(location, new Date(location.reconciled_until.getTime() - OVERLAP_MS), this.clients);
      for (let i = 0; i < changes.length; i += 5_000) await recordObjectEvents(this.sql, location, changes.slice(i, i + 5_000));
      await markListed(this.sql, location.id, startedAt);
    }
    const next = await nextListingDue(this.sql);
    return next ? Math.min(MAX_SLEEP_MS, Math.max(0, next.getTime() - Date.now() + 5)) : MAX_SLEEP_MS;
  }
}
