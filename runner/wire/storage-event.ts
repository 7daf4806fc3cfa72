/**
 * Storage types and the storage event that triggers a task, as plain values
 * (as the server stores them in `tasks.trigger`) and as the API's messages,
 * both ways. Shared by the SDK and the server.
 */
import { create } from "@bufbuild/protobuf";
import { type StorageEvent, StorageEventSchema, StorageEventType, StorageType } from "../../gen/sluice/v1/storage_pb.js";

export type StorageTypeName = "gcs" | "s3" | "fs";

export const storageTypeToProto: Readonly<Record<StorageTypeName, StorageType>> = {
  gcs: StorageType.GCS,
  s3: StorageType.S3,
  fs: StorageType.FS,
};

/** The name of a storage type; undefined for UNSPECIFIED or a value this version does not know. */
export const storageTypeFromProto: ReadonlyMap<StorageType, StorageTypeName> = new Map(
  Object.entries(storageTypeToProto).map(([name, value]) => [value, name as StorageTypeName]),
);

/** What a task's trigger keeps of its storage location, enough to build a client for it. */
export interface LocationRef {
  id: string;
  type: StorageTypeName;
  location: string;
  endpoint: string;
  region: string;
}

/** A task's storage event, as stored in `tasks.trigger`. */
export interface TriggerJson {
  type: "created" | "modified";
  key: string;
  version: string;
  location: LocationRef;
}

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

/** The event as a plain value; null when it names no location or a storage type this version does not know. */
export function triggerFromProto(e: StorageEvent): TriggerJson | null {
  const type = e.location ? storageTypeFromProto.get(e.location.type) : undefined;
  if (!e.location || !type) return null;
  return {
    type: e.type === StorageEventType.MODIFIED ? "modified" : "created",
    key: e.key,
    version: e.version,
    location: { id: e.location.id, type, location: e.location.location, endpoint: e.location.endpoint, region: e.location.region },
  };
}
