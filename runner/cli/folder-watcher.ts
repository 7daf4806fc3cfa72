import { type Stats, existsSync } from "node:fs";
import { mkdir, readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import type { AsyncSubscription, Event } from "@parcel/watcher";
import { importOptional } from "../sdk/optional.js";

type ParcelWatcher = typeof import("@parcel/watcher");

/** A file created or modified in a watched folder. */
export interface ObjectChangeIn {
  key: string;
  /** mtime and size: changes whenever the file does. */
  version: string;
  modifiedAt?: Date;
  /** Set when the file existed before. */
  modified?: boolean;
}

/** Writes of the snapshot at most this often while events arrive. */
const SNAPSHOT_EVERY_MS = 1_000;
/**
 * A file is reported once no event came for it for this long, so that one
 * write (create, then data, then close) is one version, not two or three.
 */
const SETTLE_MS = 150;

/**
 * Watches a folder with @parcel/watcher (inotify, FSEvents, ...) and reports
 * files created or modified in it, as keys relative to the folder with a
 * version made of mtime and size. A snapshot of the folder is kept in
 * `snapshotFile`: on start, what changed since the last snapshot (while
 * nothing watched) is reported first.
 */
export class FolderWatcher {
  // @parcel/watcher is loaded by start(): the SDK carries it as an optional peer.
  private watcher!: ParcelWatcher;
  private subscription: AsyncSubscription | null = null;
  private snapshotTimer: NodeJS.Timeout | null = null;
  private queue: Promise<void> = Promise.resolve();
  /** Paths with recent events, and when they settle. */
  private readonly unsettled = new Map<string, { due: number; type: Event["type"] }>();
  private settleTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly folder: string,
    private readonly snapshotFile: string,
    private readonly report: (changes: ObjectChangeIn[]) => Promise<unknown>,
    private readonly onError: (e: unknown) => void,
  ) {}

  async start(): Promise<void> {
    const watcher = (this.watcher = await importOptional(
      "@parcel/watcher",
      async () => ((await import("@parcel/watcher")) as { default: ParcelWatcher }).default,
      "watching a folder",
    ));
    await mkdir(join(this.snapshotFile, ".."), { recursive: true });
    const ignore = [".sluice-tmp", "**/.*.sluice-tmp"];
    if (existsSync(this.snapshotFile)) {
      const missed = await watcher.getEventsSince(this.folder, this.snapshotFile, { ignore });
      await this.handle(missed);
    }
    this.subscription = await watcher.subscribe(
      this.folder,
      (err, events) => {
        if (err) {
          this.onError(err);
          return;
        }
        this.settle(events);
      },
      { ignore },
    );
    await watcher.writeSnapshot(this.folder, this.snapshotFile, { ignore });
  }

  async stop(): Promise<void> {
    if (this.snapshotTimer) clearTimeout(this.snapshotTimer);
    this.snapshotTimer = null;
    // A folder deleted while watched took its watch with it: nothing to remove.
    await this.subscription?.unsubscribe().catch((e: unknown) => {
      if (existsSync(this.folder)) this.onError(e);
    });
    this.subscription = null;
    // Whatever is still settling is reported now.
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.flushSettled(Infinity);
    await this.queue;
    await this.watcher.writeSnapshot(this.folder, this.snapshotFile).catch(this.onError);
  }

  /** Holds events until their file has been quiet for SETTLE_MS. */
  private settle(events: Event[]): void {
    const due = Date.now() + SETTLE_MS;
    for (const e of events) {
      const type = e.type === "update" && this.unsettled.get(e.path)?.type === "create" ? "create" : e.type;
      this.unsettled.set(e.path, { due, type });
    }
    if (!this.settleTimer) this.armSettle();
  }

  private armSettle(): void {
    let earliest = Infinity;
    for (const { due } of this.unsettled.values()) earliest = Math.min(earliest, due);
    if (earliest === Infinity) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = null;
      this.flushSettled(Date.now());
      this.armSettle();
    }, Math.max(0, earliest - Date.now()));
  }

  /** Reports the files settled by `now`, one batch at a time, in order. */
  private flushSettled(now: number): void {
    const ready: Event[] = [];
    for (const [path, { due, type }] of this.unsettled) {
      if (due <= now) {
        ready.push({ path, type });
        this.unsettled.delete(path);
      }
    }
    if (ready.length > 0) this.queue = this.queue.then(() => this.handle(ready)).catch(this.onError);
  }

  private async handle(events: Event[]): Promise<void> {
    const changes: ObjectChangeIn[] = [];
    for (const e of events) {
      if (e.type === "delete") continue;
      try {
        const s = await stat(e.path);
        if (s.isDirectory() && e.type === "create") {
          // Files written into a new folder before the watcher saw the folder
          // have no events of their own: look inside.
          for (const f of await readdir(e.path, { recursive: true, withFileTypes: true })) {
            if (f.isFile()) await this.addFile(changes, join(f.parentPath ?? (f as unknown as { path: string }).path, f.name), false);
          }
          continue;
        }
        if (s.isFile()) this.addChange(changes, e.path, s, e.type === "update");
      } catch {
        // Gone again before we looked: nothing to start.
      }
    }
    if (changes.length > 0) {
      for (let i = 0; i < changes.length; i += 5_000) await this.report(changes.slice(i, i + 5_000));
    }
    this.scheduleSnapshot();
  }

  private async addFile(changes: ObjectChangeIn[], path: string, modified: boolean): Promise<void> {
    const s = await stat(path).catch(() => null);
    if (s?.isFile()) this.addChange(changes, path, s, modified);
  }

  private addChange(changes: ObjectChangeIn[], path: string, s: Stats, modified: boolean): void {
    const key = relative(this.folder, path).split(sep).join("/");
    if (key.startsWith("../") || key.endsWith(".sluice-tmp") || key.startsWith(".sluice-tmp/")) return;
    changes.push({ key, version: `${Math.round(s.mtimeMs * 1000)}-${s.size}`, modifiedAt: s.mtime, modified });
  }

  private scheduleSnapshot(): void {
    if (this.snapshotTimer || !this.subscription) return;
    this.snapshotTimer = setTimeout(() => {
      this.snapshotTimer = null;
      if (this.subscription) void this.watcher.writeSnapshot(this.folder, this.snapshotFile).catch(this.onError);
    }, SNAPSHOT_EVERY_MS);
    this.snapshotTimer.unref();
  }
}
