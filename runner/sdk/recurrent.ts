import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client as ConnectClient } from "@connectrpc/connect";
import { type RecurrentTask as RecurrentTaskMessage, RecurrentTaskService } from "../../gen/sluice/v1/recurrent_task_service_pb.js";
import { StorageService } from "../../gen/sluice/v1/storage_service_pb.js";
import { StorageEventTask, StorageLocation } from "./storage.js";
import { type StorageTypeName, storageTypeToProto } from "../wire/storage-event.js";
import { type Task, type TaskIdentifier, identifierOf, serializeInput } from "./task.js";

export interface CronTrigger {
  /** Five fields, or six with seconds first. */
  expression: string;
  /** IANA time zone the expression is read in. */
  timeZone: string;
  /** The next tick; undefined while paused. */
  nextTickAt?: Date;
}

/** A task prototype that submits jobs by itself. */
export interface RecurrentTaskInfo {
  id: string;
  name: string;
  cluster: string;
  identifier: TaskIdentifier;
  /** The prototype's input fields. */
  input: unknown;
  maxRetries: number;
  cronTriggers: CronTrigger[];
  /** Storage event triggers: location ids and globs. */
  storageEventTriggers: { locationId: string; glob: string }[];
  paused: boolean;
  createdAt: Date;
  lastTickAt?: Date;
  lastJobId?: string;
}

export interface CronTaskOptions {
  /** IANA time zone for every expression (default UTC). */
  timeZone?: string;
  /** Retries of each job's root task. */
  maxRetries?: number;
}

const decoder = new TextDecoder();

function fromMessage(m: RecurrentTaskMessage): RecurrentTaskInfo {
  let input: unknown;
  try {
    input = JSON.parse(decoder.decode(m.task?.input));
  } catch {
    input = m.task?.input;
  }
  return {
    id: m.id,
    name: m.name,
    cluster: m.cluster,
    identifier: { name: m.task?.identifier?.name ?? "", version: m.task?.identifier?.version ?? "" },
    input,
    maxRetries: m.task?.maxRetries ?? 0,
    cronTriggers: m.cronTriggers.map((t) => ({
      expression: t.expression,
      timeZone: t.timeZone,
      nextTickAt: t.nextTickAt ? timestampDate(t.nextTickAt) : undefined,
    })),
    storageEventTriggers: m.storageEventTriggers.map((t) => ({ locationId: t.locationId, glob: t.glob })),
    paused: m.paused,
    createdAt: m.createdAt ? timestampDate(m.createdAt) : new Date(0),
    lastTickAt: m.lastTickAt ? timestampDate(m.lastTickAt) : undefined,
    lastJobId: m.lastJobId || undefined,
  };
}

type Ref = string | { id: string };
const ref = (r: Ref) => (typeof r === "string" ? r : r.id);

export interface StorageEventTaskOptions {
  /** (location, glob) pairs: a job for every object created or modified in the location whose key matches. */
  triggers: readonly (readonly [StorageLocation | string, string])[];
  /** Retries of each job's root task. */
  maxRetries?: number;
}

export interface StorageLocationSpec {
  type: StorageTypeName;
  /** GCS: "project:bucket"; S3: the bucket; FS: an absolute folder path. */
  location: string;
  /** S3: an S3-compatible endpoint. */
  endpoint?: string;
  /** S3: the region (default us-east-1). */
  region?: string;
  /** S3: an SQS queue that receives the bucket's event notifications; the server reads it. */
  sqsQueueUrl?: string;
  /** How often the server lists the location for objects whose events were lost (default 300; 0 never). */
  reconcileIntervalSeconds?: number;
  /** FS: the server does not watch the folder; a `sluice watch` beside it reports its events. */
  externalWatcher?: boolean;
}

/** Creates, lists, pauses, resumes and deletes recurrent tasks, and manages storage locations. */
export class RecurrentTaskClient {
  constructor(
    private readonly api: ConnectClient<typeof RecurrentTaskService>,
    private readonly storage: ConnectClient<typeof StorageService>,
  ) {}

  /**
   * Submits a job of `task` (a StorageEventTask) for every object created or
   * modified in a trigger's location whose key matches its glob. Exactly one
   * job per object version and trigger, however often its event arrives.
   */
  async createRecurringStorageEventTask(name: string, cluster: string, task: StorageEventTask<any>, options: StorageEventTaskOptions): Promise<RecurrentTaskInfo> {
    const res = await this.api.createStorageEventTask({
      name,
      cluster,
      task: { identifier: identifierOf(task), input: serializeInput(task), maxRetries: options.maxRetries ?? 0 },
      triggers: options.triggers.map(([location, glob]) => ({ locationId: typeof location === "string" ? location : location.id, glob })),
    });
    return fromMessage(res.recurrentTask!);
  }

  /** Every registered storage location. */
  async storageLocations(): Promise<StorageLocation[]> {
    return (await this.storage.listStorageLocations({})).storageLocations.map((l) => new StorageLocation(l));
  }

  /** Registers a storage location; the server refuses one it cannot reach, saying why. */
  async registerStorageLocation(spec: StorageLocationSpec): Promise<StorageLocation> {
    const interval = spec.reconcileIntervalSeconds;
    const res = await this.storage.registerStorageLocation({
      type: storageTypeToProto[spec.type],
      location: spec.location,
      endpoint: spec.endpoint ?? "",
      region: spec.region ?? "",
      sqsQueueUrl: spec.sqsQueueUrl ?? "",
      reconcileIntervalSeconds: interval ?? 0,
      disableReconciliation: interval === 0,
      externalWatcher: spec.externalWatcher ?? false,
    });
    return new StorageLocation(res.storageLocation!);
  }

  async storageLocation(id: string): Promise<StorageLocation> {
    return new StorageLocation((await this.storage.getStorageLocation({ id })).storageLocation!);
  }

  /**
   * Gives a storage location a new push token (the old one stops working);
   * the answer carries it, as registration's does, and no other answer will.
   */
  async rotatePushToken(location: StorageLocation | string): Promise<StorageLocation> {
    const res = await this.storage.rotatePushToken({ id: typeof location === "string" ? location : location.id });
    return new StorageLocation(res.storageLocation!);
  }

  /** Deletes a storage location that no storage event task uses. */
  async deleteStorageLocation(location: StorageLocation | string): Promise<void> {
    await this.storage.deleteStorageLocation({ id: typeof location === "string" ? location : location.id });
  }

  /**
   * Submits a job of `task` at every tick of `cron` (one expression or several),
   * named after `name` and the tick time, to `cluster`. Exactly one job per
   * tick, however many servers run; a tick missed while no server ran is
   * submitted once when one comes back (only the latest missed tick).
   */
  async createRecurringCronTask(name: string, cluster: string, task: Task<any>, cron: string | readonly string[], options: CronTaskOptions = {}): Promise<RecurrentTaskInfo> {
    const expressions = typeof cron === "string" ? [cron] : cron;
    const res = await this.api.createCronTask({
      name,
      cluster,
      task: { identifier: identifierOf(task), input: serializeInput(task), maxRetries: options.maxRetries ?? 0 },
      cronTriggers: expressions.map((expression) => ({ expression, timeZone: options.timeZone ?? "" })),
    });
    return fromMessage(res.recurrentTask!);
  }

  /** Every recurrent task, oldest first. */
  async list(): Promise<RecurrentTaskInfo[]> {
    return (await this.api.listRecurrentTasks({})).recurrentTasks.map(fromMessage);
  }

  /** A recurrent task by id or name. */
  async get(idOrName: Ref): Promise<RecurrentTaskInfo> {
    return fromMessage((await this.api.getRecurrentTask({ idOrName: ref(idOrName) })).recurrentTask!);
  }

  /** Stops submitting jobs; ticks while paused are skipped. */
  async pause(task: Ref): Promise<RecurrentTaskInfo> {
    return fromMessage((await this.api.pauseRecurrentTask({ idOrName: ref(task) })).recurrentTask!);
  }

  /** Submits jobs again from the next tick on. */
  async resume(task: Ref): Promise<RecurrentTaskInfo> {
    return fromMessage((await this.api.resumeRecurrentTask({ idOrName: ref(task) })).recurrentTask!);
  }

  /** Deletes a recurrent task (by id, name or the object). Jobs it submitted stay, queued ones too. */
  async delete(task: Ref): Promise<void> {
    await this.api.deleteRecurrentTask({ idOrName: ref(task) });
  }
}
