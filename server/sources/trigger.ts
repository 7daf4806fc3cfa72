import { create } from "@bufbuild/protobuf";
import { type StorageEvent, StorageEventSchema, StorageEventType, StorageType } from "../../gen/sluice/v1/storage_pb.js";
import { checkText, invalid } from "../validation.js";
import type { LocationRef, StorageTypeName } from "./locations.js";

/** A task's storage event as stored in `tasks.trigger`. */
export interface TriggerJson {
  type: "created" | "modified";
  key: string;
  version: string;
  location: LocationRef;
}

export const storageTypeToProto: Record<StorageTypeName, StorageType> = {
  gcs: StorageType.GCS,
  s3: StorageType.S3,
  fs: StorageType.FS,
};

export const storageTypeFromProto = new Map<StorageType, StorageTypeName>(
  Object.entries(storageTypeToProto).map(([k, v]) => [v, k as StorageTypeName]),
);

export function triggerToProto(t: TriggerJson): StorageEvent {
  return create(StorageEventSchema, {
    type: t.type === "modified" ? StorageEventType.MODIFIED : StorageEventType.CREATED,
    key: t.key,
    version: t.version,
    location: {
      id: t.location.id,
      type: storageTypeToProto[t.location.type],
      location: t.location.location,
      endpoint: t.location.endpoint,
      region: t.location.region,
    },
  });
}

/** Checks a trigger given with a submitted task (a storage event task made with `once`). */
export function triggerFromProto(e: StorageEvent, where: string): TriggerJson {
  const type = e.location ? storageTypeFromProto.get(e.location.type) : undefined;
  if (!e.location || !type || e.location.location === "") {
    throw invalid(`${where}: trigger.location needs a type and a location (a registered storage location)`);
  }
  if (e.key === "") throw invalid(`${where}: trigger.key is empty; name the object the task handles`);
  checkText(e.key, `${where}: trigger.key`);
  checkText(e.version, `${where}: trigger.version`);
  checkText(e.location.location, `${where}: trigger.location.location`);
  return {
    type: e.type === StorageEventType.MODIFIED ? "modified" : "created",
    key: e.key,
    version: e.version,
    location: { id: e.location.id, type, location: e.location.location, endpoint: e.location.endpoint, region: e.location.region },
  };
}
