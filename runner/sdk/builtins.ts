import { folderOf, writeFolderObject } from "./folder-objects.js";
import { StorageLocation } from "./storage.js";
import { Task, type TaskClass } from "./task.js";
import type { LocationRef } from "../wire/storage-event.js";

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

/** Tasks every runner registers unless told not to. */
export const BUILTIN_TASKS: readonly TaskClass[] = [WriteObject];
