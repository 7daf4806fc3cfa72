import { join } from "node:path";
import type { Sql } from "postgres";
import { recordObjectEvents } from "./events.js";
import { FolderWatcher } from "./folder-watcher.js";
import { type LocationRow, listLocations } from "../store/storage-locations.js";

/**
 * The server's watchers of the folders registered as FS locations it can see
 * (not those with an external watcher). Kept in step with the registered
 * locations by `sync()`. Every server watches every folder; the storage_events
 * key makes the events of one change start one job.
 */
export class ServerWatchers {
  private readonly watchers = new Map<string, FolderWatcher>();
  private syncing: Promise<void> = Promise.resolve();

  constructor(
    private readonly sql: Sql,
    private readonly snapshotDir: string,
    private readonly onError: (e: unknown) => void,
  ) {}

  sync(): Promise<void> {
    this.syncing = this.syncing.then(() => this.doSync()).catch(this.onError);
    return this.syncing;
  }

  private async doSync(): Promise<void> {
    const locations = (await listLocations(this.sql)).filter((l) => l.type === "fs" && !l.external_watcher);
    const wanted = new Map(locations.map((l) => [l.id, l]));
    for (const [id, w] of this.watchers) {
      if (!wanted.has(id)) {
        this.watchers.delete(id);
        await w.stop();
      }
    }
    for (const [id, l] of wanted) {
      if (this.watchers.has(id)) continue;
      const w = this.watcherFor(l);
      this.watchers.set(id, w);
      await w.start().catch((e) => {
        this.watchers.delete(id);
        this.onError(e);
      });
    }
  }

  private watcherFor(location: LocationRow): FolderWatcher {
    return new FolderWatcher(
      location.location,
      join(this.snapshotDir, `location-${location.id}.snapshot`),
      (changes) => recordObjectEvents(this.sql, location, changes),
      this.onError,
    );
  }

  async stop(): Promise<void> {
    await this.syncing;
    await Promise.all([...this.watchers.values()].map((w) => w.stop()));
    this.watchers.clear();
  }
}
