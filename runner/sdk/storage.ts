import type { S3Client } from "@aws-sdk/client-s3";
import type { Storage } from "@google-cloud/storage";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { type StorageEvent, type StorageLocation as LocationMessage, StorageLocationSchema } from "../../gen/sluice/v1/storage_pb.js";
import { readFolderObject, writeFolderObject } from "./folder-objects.js";
import { importOptional } from "./optional.js";
import { Task } from "./task.js";
import { type LocationRef, type StorageTypeName, storageTypeFromProto, storageTypeToProto, triggerFromProto, triggerToProto } from "../wire/storage-event.js";

export type { StorageTypeName };

/**
 * A registered bucket or folder. `read(key)` fetches an object through
 * @google-cloud/storage, @aws-sdk/client-s3 or the file system, with the
 * credentials of the process that calls it (the runner's environment).
 */
export class StorageLocation {
  readonly id: string;
  readonly type: StorageTypeName;
  /** GCS: "project:bucket"; S3: the bucket; FS: the folder. */
  readonly location: string;
  readonly endpoint: string;
  readonly region: string;
  readonly sqsQueueUrl: string;
  readonly reconcileIntervalSeconds: number;
  /** The secret push notifications for it must carry. */
  readonly pushToken: string;
  /** Where push notifications go, relative to the server URL (S3 and GCS). */
  readonly pushPath: string;
  readonly createdAt?: Date;
  private s3?: S3Client;
  private gcs?: Storage;

  constructor(m: LocationMessage) {
    this.id = m.id;
    this.type = storageTypeFromProto.get(m.type) ?? "fs";
    this.location = m.location;
    this.endpoint = m.endpoint;
    this.region = m.region;
    this.sqsQueueUrl = m.sqsQueueUrl;
    this.reconcileIntervalSeconds = m.reconcileIntervalSeconds;
    this.pushToken = m.pushToken;
    this.pushPath = m.pushPath;
    this.createdAt = m.createdAt ? timestampDate(m.createdAt) : undefined;
  }

  /** A location from what a task's input keeps of it. */
  static fromRef(ref: LocationRef): StorageLocation {
    return new StorageLocation(
      create(StorageLocationSchema, { id: ref.id, type: storageTypeToProto[ref.type], location: ref.location, endpoint: ref.endpoint, region: ref.region }),
    );
  }

  // The cloud SDKs are loaded on first use: a process that never touches S3
  // or GCS (a server, most runners) does not carry their 45 MB.
  private async s3Client(): Promise<S3Client> {
    if (!this.s3) {
      const { S3Client } = await importOptional("@aws-sdk/client-s3", () => import("@aws-sdk/client-s3"), "an S3 storage location");
      this.s3 = new S3Client({
        region: this.region || process.env.AWS_REGION || "us-east-1",
        ...(this.endpoint ? { endpoint: this.endpoint, forcePathStyle: true } : {}),
      });
    }
    return this.s3;
  }

  private async gcsFile(key: string) {
    const [project, bucket] = this.location.split(":");
    if (!this.gcs) {
      const { Storage } = await importOptional("@google-cloud/storage", () => import("@google-cloud/storage"), "a GCS storage location");
      // STORAGE_EMULATOR_HOST, if set, points the client at an emulator.
      this.gcs = new Storage({ projectId: project });
    }
    return this.gcs.bucket(bucket).file(key);
  }

  /** The bytes of the object at `key`. */
  async read(key: string): Promise<Uint8Array> {
    if (this.type === "fs") return readFolderObject(this.location, key);
    if (this.type === "s3") {
      const s3 = await this.s3Client();
      const { GetObjectCommand } = await import("@aws-sdk/client-s3");
      const res = await s3.send(new GetObjectCommand({ Bucket: this.location, Key: key }));
      return res.Body!.transformToByteArray();
    }
    const [data] = await (await this.gcsFile(key)).download();
    return data;
  }

  /** Writes `data` to the object at `key` (a folder's file appears whole: it is renamed into place). */
  async write(key: string, data: Uint8Array): Promise<void> {
    if (this.type === "fs") return writeFolderObject(this.location, key, data);
    if (this.type === "s3") {
      const s3 = await this.s3Client();
      const { PutObjectCommand } = await import("@aws-sdk/client-s3");
      await s3.send(new PutObjectCommand({ Bucket: this.location, Key: key, Body: data }));
      return;
    }
    await (await this.gcsFile(key)).save(Buffer.from(data), { resumable: false });
  }

  /** What a WriteObject task or a trigger keeps of this location. */
  toRef(): LocationRef {
    return { id: this.id, type: this.type, location: this.location, endpoint: this.endpoint, region: this.region };
  }

  toString(): string {
    return `StorageLocation(${this.type}: ${this.location})`;
  }
}

export type StorageEventTypeName = "CREATED" | "MODIFIED";

/** What triggered a storage event task. */
export interface StorageTrigger {
  /** CREATED for a new object, MODIFIED for a new version or new metadata. */
  type: StorageEventTypeName;
  /** The object's key (its path in the location), as Tilebox calls it. */
  location: string;
  /** The object's key (same as `location`). */
  key: string;
  /** The object version the event is for. */
  version: string;
  /** The storage location, to read the object with: `trigger.storage.read(trigger.key)`. */
  storage: StorageLocation;
}

export function triggerFromMessage(e: StorageEvent): StorageTrigger {
  const t = triggerFromProto(e);
  if (!t) throw new Error(`the storage event for ${JSON.stringify(e.key)} names no storage location of a type this SDK knows: upgrade the SDK`);
  return { type: t.type === "modified" ? "MODIFIED" : "CREATED", location: t.key, key: t.key, version: t.version, storage: StorageLocation.fromRef(t.location) };
}

/**
 * A task started by objects created or modified in a storage location. Register
 * it with `client.recurrentTasks().createRecurringStorageEventTask(...)`; its
 * jobs' tasks see the event in `this.trigger`. To submit one as an ordinary job,
 * give it a trigger with `once(location, key)`.
 */
export abstract class StorageEventTask<Input extends object = Record<string, unknown>> extends Task<Input> {
  /** The event this task handles; set on the runner (or by `once`). */
  trigger?: StorageTrigger;

  /** A copy of this task that handles the object `key` of `location`, to submit as a normal job. */
  once(location: StorageLocation, key: string, type: StorageEventTypeName = "CREATED"): this {
    const copy = new (this.constructor as new (input: Input) => this)(this.input);
    copy.trigger = { type, location: key, key, version: "", storage: location };
    return copy;
  }
}

/** The trigger of a task to submit, as the API wants it; throws for an untriggered storage event task. */
export function triggerOf(task: Task<any>): StorageEvent | undefined {
  if (!(task instanceof StorageEventTask)) return undefined;
  const t = task.trigger;
  if (!t) {
    throw new TypeError(
      `${task.constructor.name} is a StorageEventTask and cannot be submitted without being triggered: use task.once(location, key)`,
    );
  }
  return triggerToProto({ type: t.type === "MODIFIED" ? "modified" : "created", key: t.key, version: t.version, location: t.storage.toRef() });
}
