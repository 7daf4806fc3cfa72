import { StorageEventTask } from "./storage.js";
import type { TaskClass } from "./task.js";

/**
 * Writes content to a key of a registered storage location: the built-in task
 * behind scheduled object writes. The location and key travel as the task's
 * trigger, which the server replaces with the location it registered under
 * that id: a submitter names where to write, it never describes it. A folder
 * write goes to a temporary file first and is renamed into place, so a reader
 * (or a folder watcher) never sees half of it.
 */
export class WriteObject extends StorageEventTask<{ content: string }> {
  static identifier = { name: "sluice.WriteObject", version: "v2.0" };

  async execute() {
    const trigger = this.trigger;
    if (!trigger) throw new Error("sluice.WriteObject needs a trigger naming the storage location and key to write");
    await trigger.storage.write(trigger.key, Buffer.from(this.input.content, "base64"));
  }
}

/** Tasks every runner registers unless told not to. */
export const BUILTIN_TASKS: readonly TaskClass[] = [WriteObject];
