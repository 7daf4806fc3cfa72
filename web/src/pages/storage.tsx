import { StorageType } from "../../../gen/sluice/v1/storage_pb.js";
import { storageApi } from "../api.js";
import { ErrorNote, PageHeader } from "../components.js";
import { formatTime } from "../format.js";
import { usePolled } from "../hooks.js";

const TYPES: Record<number, string> = { [StorageType.GCS]: "GCS", [StorageType.S3]: "S3", [StorageType.FS]: "Folder" };

export function StoragePage() {
  const list = usePolled(() => storageApi.listStorageLocations({}), "locations", 10_000);
  const locations = list.data?.storageLocations ?? [];
  return (
    <section>
      <PageHeader title="Storage locations" />
      <ErrorNote error={list.error} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Type</th>
            <th scope="col">Location</th>
            <th scope="col">Events</th>
            <th scope="col">Reconciled every</th>
            <th scope="col">Registered</th>
          </tr>
        </thead>
        <tbody>
          {locations.map((l) => (
            <tr key={l.id}>
              <td>{l.id}</td>
              <td>{TYPES[l.type] ?? "?"}</td>
              <td>
                <code>{l.location}</code>
                {l.endpoint && <div class="muted">{l.endpoint}</div>}
                {l.region && <div class="muted">{l.region}</div>}
              </td>
              <td>
                {l.sqsQueueUrl ? <div>SQS {l.sqsQueueUrl}</div> : null}
                {l.pushPath ? <div class="muted">push to {l.pushPath}</div> : null}
              </td>
              <td>{l.reconcileIntervalSeconds > 0 ? `${l.reconcileIntervalSeconds} s` : "never"}</td>
              <td>{formatTime(l.createdAt)}</td>
            </tr>
          ))}
          {list.data && locations.length === 0 && (
            <tr>
              <td colSpan={6} class="empty">
                No storage locations registered.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
