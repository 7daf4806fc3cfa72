import { Cron } from "croner";
import { useState } from "preact/hooks";
import type { CronTrigger, RecurrentTask } from "../../../gen/sluice/v1/recurrent_task_service_pb.js";
import { recurrentApi, storageApi } from "../api.js";
import { ErrorNote, PageHeader } from "../components.js";
import { errorText, formatTime, toDate } from "../format.js";
import { usePolled } from "../hooks.js";

const NEXT_TICKS = 3;

/** The next ticks of a cron trigger, read as the server reads it (croner, same options). */
function nextTicks(t: CronTrigger): Date[] {
  try {
    const cron = new Cron(t.expression, { timezone: t.timeZone || "UTC", mode: "5-or-6-parts", paused: true });
    return cron.nextRuns(NEXT_TICKS);
  } catch {
    const next = toDate(t.nextTickAt);
    return next ? [next] : [];
  }
}

function Row({ task, locations, onChanged }: { task: RecurrentTask; locations: Map<string, string>; onChanged: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const act = async (what: "pause" | "resume" | "delete") => {
    if (what === "delete" && !window.confirm(`Delete recurrent task "${task.name}"? Jobs it already submitted stay.`)) return;
    setBusy(true);
    setError(undefined);
    try {
      const ref = { idOrName: task.id };
      if (what === "pause") await recurrentApi.pauseRecurrentTask(ref);
      else if (what === "resume") await recurrentApi.resumeRecurrentTask(ref);
      else await recurrentApi.deleteRecurrentTask(ref);
      onChanged();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <tr data-recurrent={task.name}>
      <th scope="row">
        {task.name}
        <div class="muted">#{task.id}</div>
      </th>
      <td>
        {task.task?.identifier?.name} {task.task?.identifier?.version}
        <div class="muted">on {task.cluster}</div>
      </td>
      <td>
        {task.cronTriggers.map((t, i) => (
          <div key={`c${i}`} class="trigger">
            <code>{t.expression}</code> <span class="muted">{t.timeZone || "UTC"}</span>
            {!task.paused && (
              <ul class="plain ticks" aria-label="Next ticks">
                {nextTicks(t).map((d) => (
                  <li key={d.getTime()}>{formatTime(d)}</li>
                ))}
              </ul>
            )}
          </div>
        ))}
        {task.storageEventTriggers.map((t, i) => (
          <div key={`s${i}`} class="trigger">
            <code>{t.glob}</code> in <a href="#/storage">{locations.get(t.locationId) ?? `location ${t.locationId}`}</a>
          </div>
        ))}
      </td>
      <td>
        <span class={`badge ${task.paused ? "state-cancelled" : "state-running"}`}>{task.paused ? "paused" : "active"}</span>
      </td>
      <td>
        {task.lastJobId ? <a href={`#/jobs/${task.lastJobId}`}>#{task.lastJobId}</a> : "none yet"}
        {task.lastTickAt && <div class="muted">{formatTime(task.lastTickAt)}</div>}
      </td>
      <td class="actions">
        {task.paused ? (
          <button type="button" disabled={busy} onClick={() => act("resume")} aria-label={`Resume ${task.name}`}>
            Resume
          </button>
        ) : (
          <button type="button" disabled={busy} onClick={() => act("pause")} aria-label={`Pause ${task.name}`}>
            Pause
          </button>
        )}
        <button type="button" class="danger" disabled={busy} onClick={() => act("delete")} aria-label={`Delete ${task.name}`}>
          Delete
        </button>
        <ErrorNote error={error} />
      </td>
    </tr>
  );
}

export function RecurrentPage() {
  const list = usePolled(() => recurrentApi.listRecurrentTasks({}), "recurrent", 5000);
  const locations = usePolled(() => storageApi.listStorageLocations({}), "locations", 30_000);
  const names = new Map((locations.data?.storageLocations ?? []).map((l) => [l.id, l.location]));
  const tasks = list.data?.recurrentTasks ?? [];
  return (
    <section>
      <PageHeader title="Recurrent tasks" />
      <p class="muted">Cron tasks submit a job at each tick; storage event tasks submit one per object created or modified that matches a trigger.</p>
      <ErrorNote error={list.error} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Task</th>
            <th scope="col">Triggers</th>
            <th scope="col">State</th>
            <th scope="col">Last job</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {tasks.map((t) => (
            <Row key={t.id} task={t} locations={names} onChanged={list.reload} />
          ))}
          {list.data && tasks.length === 0 && (
            <tr>
              <td colSpan={6} class="empty">
                No recurrent tasks. Create one with <code>sluice</code> or the SDK.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
