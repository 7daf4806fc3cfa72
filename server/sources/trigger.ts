import type { StorageEvent } from "../../gen/sluice/v1/storage_pb.js";
import { type TriggerJson, triggerFromProto } from "../../runner/wire/storage-event.js";
import { checkText, invalid } from "../validation.js";

/** Checks a trigger given with a submitted task (a storage event task made with `once`). */
export function checkTrigger(e: StorageEvent, where: string): TriggerJson {
  const trigger = triggerFromProto(e);
  if (!trigger || trigger.location.location === "") {
    throw invalid(`${where}: trigger.location needs a type and a location (a registered storage location)`);
  }
  if (e.key === "") throw invalid(`${where}: trigger.key is empty; name the object the task handles`);
  checkText(e.key, `${where}: trigger.key`);
  checkText(e.version, `${where}: trigger.version`);
  checkText(trigger.location.location, `${where}: trigger.location.location`);
  return trigger;
}
