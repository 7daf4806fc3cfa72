import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type StorageLocation, StorageLocationSchema, StorageType } from "../../gen/sluice/v1/storage_pb.js";
import { StorageService } from "../../gen/sluice/v1/storage_service_pb.js";
import { recordObjectEvents } from "../sources/events.js";
import { type StorageClients, checkLocation, checkReachable } from "../sources/locations.js";
import { checkQueueReachable } from "../sources/sqs.js";
import { checkFsRoot } from "../sources/fs-roots.js";
import { type LocationRow, deleteLocation, getLocation, insertLocation, listLocations, rotatePushToken } from "../store/storage-locations.js";
import { storageTypeFromProto, storageTypeToProto } from "../../runner/wire/storage-event.js";
import { failedPrecondition, invalid, notFound, parseId } from "../validation.js";
import type { ServiceDeps } from "./deps.js";
import { sameSecret } from "../auth/secrets.js";

const DEFAULT_RECONCILE_S = 300;
const MAX_CHANGES = 10_000;

/** A location as answered; its push token only when `withToken` (registration and rotation). */
export function locationToProto(l: LocationRow, withToken = false): StorageLocation {
  return create(StorageLocationSchema, {
    id: l.id,
    type: storageTypeToProto[l.type],
    location: l.location,
    endpoint: l.endpoint,
    region: l.region,
    sqsQueueUrl: l.sqs_queue_url,
    reconcileIntervalSeconds: l.reconcile_interval_s,
    pushToken: withToken ? l.push_token : "",
    pushPath: l.type === "fs" ? "" : `/events/${l.type}/${l.id}`,
    createdAt: timestampFromDate(l.created_at),
  });
}

export interface StorageDeps extends ServiceDeps {
  storage: StorageClients & {
    /**
     * Called when a location is registered or deleted: starts or stops this
     * server's watchers and pollers before the call returns, and tells the
     * other servers.
     */
    onChange(): Promise<void>;
  };
}

export function storageService({ sql, reads, storage }: StorageDeps): ServiceImpl<typeof StorageService> {
  async function find(id: string): Promise<LocationRow> {
    const row = await getLocation(sql, parseId(id, "id"));
    if (!row) throw notFound(`storage location ${id} does not exist`);
    return row;
  }

  return {
    async registerStorageLocation(req) {
      const type = storageTypeFromProto.get(req.type);
      if (!type) throw invalid(`type must be GCS, S3 or FS, got ${StorageType[req.type] ?? req.type}`);
      checkLocation(type, req.location, req.endpoint);
      if (type !== "s3" && (req.region !== "" || req.sqsQueueUrl !== "")) throw invalid("region and sqs_queue_url are only for S3 locations");
      if (type !== "fs" && req.externalWatcher) throw invalid("external_watcher is only for FS locations");
      const region = type === "s3" ? req.region || "us-east-1" : "";
      if (type === "fs") await checkFsRoot(req.location, storage.fsRoots);
      if (!req.externalWatcher) await checkReachable({ type, location: req.location, endpoint: req.endpoint, region }, storage);
      if (req.sqsQueueUrl !== "") await checkQueueReachable({ sqs_queue_url: req.sqsQueueUrl, region });
      const row = await insertLocation(sql, {
        type,
        location: req.location,
        endpoint: req.endpoint,
        region,
        sqsQueueUrl: req.sqsQueueUrl,
        externalWatcher: req.externalWatcher,
        // A folder only an external watcher sees cannot be listed by the server.
        reconcileIntervalS: req.disableReconciliation || req.externalWatcher ? 0 : req.reconcileIntervalSeconds || DEFAULT_RECONCILE_S,
      });
      if (!row) throw new ConnectError(`storage location ${req.location} is registered already`, Code.AlreadyExists);
      await storage.onChange();
      return { storageLocation: locationToProto(row, true) };
    },

    async listStorageLocations() {
      return { storageLocations: (await listLocations(reads)).map((l) => locationToProto(l)) };
    },

    async getStorageLocation(req) {
      return { storageLocation: locationToProto(await find(req.id)) };
    },

    async deleteStorageLocation(req) {
      const id = parseId(req.id, "id");
      const outcome = await deleteLocation(sql, id);
      if (outcome.kind === "missing") throw notFound(`storage location ${id} does not exist`);
      if (outcome.kind === "in-use") throw failedPrecondition(`storage location ${id} is used by a storage event task; delete that task first`);
      await storage.onChange();
      return {};
    },

    async rotatePushToken(req) {
      const row = await rotatePushToken(sql, parseId(req.id, "id"));
      if (!row) throw notFound(`storage location ${req.id} does not exist`);
      return { storageLocation: locationToProto(row, true) };
    },

    async reportObjectEvents(req) {
      const location = await find(req.locationId);
      if (!sameSecret(req.token, location.push_token)) {
        throw new ConnectError(`token does not match storage location ${location.id}'s push token`, Code.PermissionDenied);
      }
      if (req.changes.length > MAX_CHANGES) throw invalid(`${req.changes.length} changes in one call; send at most ${MAX_CHANGES}`);
      const changes = req.changes.map((c, i) => {
        if (c.key === "" || c.version === "") throw invalid(`changes[${i}]: key and version are required`);
        return { key: c.key, version: c.version, modifiedAt: c.modifiedAt ? timestampDate(c.modifiedAt) : undefined };
      });
      return { jobsSubmitted: await recordObjectEvents(sql, location, changes) };
    },
  };
}
