import { useMemo, useState } from "preact/hooks";
import type { GetJobResponse } from "../../../gen/sluice/v1/job_service_pb.js";
import type { Task } from "../../../gen/sluice/v1/task_pb.js";
import { jobsApi } from "../api.js";
import { CountsBar, ErrorNote, LiveToggle, PageHeader, StateBadge } from "../components.js";
import { TaskDiagram } from "../diagram.js";
import { elapsed, errorText, formatTime, inputText, jobStateName, taskStateName } from "../format.js";
import { navigate, usePolled } from "../hooks.js";
import { type GraphTask, type GraphView, emptyView, indexTasks } from "../task-graph.js";

/** A big job is read less often: every read sends all of its tasks. */
const refreshMs = (tasks: number) => (tasks > 2000 ? 15_000 : 3000);

function taskLabel(t: Task): string {
  return t.display || t.identifier?.name || `task ${t.id}`;
}

function TaskDetails({ task, byId, onSelect, view, onView, hasChildren }: {
  task: Task;
  byId: Map<string, Task>;
  onSelect: (id: string) => void;
  view: GraphView;
  onView: (v: GraphView) => void;
  hasChildren: boolean;
}) {
  const state = taskStateName(task.state);
  const collapsed = view.collapsed.has(task.id);
  const toggle = () => {
    const c = new Set(view.collapsed);
    const x = new Set(view.expanded);
    if (collapsed) {
      c.delete(task.id);
      x.add(task.id);
    } else {
      c.add(task.id);
      x.delete(task.id);
    }
    onView({ ...view, collapsed: c, expanded: x });
  };
  const link = (id: string) => {
    const t = byId.get(id);
    return (
      <button type="button" class="link" onClick={() => onSelect(id)}>
        {t ? `${taskLabel(t)} #${id}` : `#${id}`}
      </button>
    );
  };
  return (
    <section class="task-details" aria-labelledby="task-title">
      <h2 id="task-title">
        {taskLabel(task)} <span class="muted">#{task.id}</span>
      </h2>
      <dl class="facts">
        <dt>State</dt>
        <dd>
          <StateBadge state={state} />
        </dd>
        <dt>Task</dt>
        <dd>
          {task.identifier?.name} {task.identifier?.version}
        </dd>
        <dt>Cluster</dt>
        <dd>{task.cluster}</dd>
        <dt>Parent</dt>
        <dd>{task.parentId ? link(task.parentId) : "none (a root task)"}</dd>
        <dt>Depends on</dt>
        <dd>{task.dependsOn.length === 0 ? "nothing" : task.dependsOn.map((d) => <div key={d}>{link(d)}</div>)}</dd>
        <dt>Attempts</dt>
        <dd>{task.attempts}</dd>
        <dt>Failures</dt>
        <dd>
          {task.failures} ({task.maxRetries === 0 ? "no retries allowed" : `up to ${task.maxRetries} ${task.maxRetries === 1 ? "retry" : "retries"}`})
        </dd>
        <dt>Created</dt>
        <dd>{formatTime(task.createdAt)}</dd>
        <dt>Started</dt>
        <dd>{formatTime(task.startedAt)}</dd>
        <dt>Finished</dt>
        <dd>
          {formatTime(task.finishedAt)}
          {task.startedAt && ` (${elapsed(task.startedAt, task.finishedAt)})`}
        </dd>
      </dl>
      {hasChildren && (
        <button type="button" onClick={toggle}>
          {collapsed ? "Show subtasks" : "Hide subtasks"}
        </button>
      )}
      {task.lastError && (
        <>
          <h3>Last error (attempt {task.lastError.attempt})</h3>
          <p class="error-message">{task.lastError.message}</p>
          {task.lastError.stack && (
            <details open>
              <summary>Stack</summary>
              <pre class="code">{task.lastError.stack}</pre>
            </details>
          )}
        </>
      )}
      <h3>Input</h3>
      <pre class="code" aria-label="Task input">
        {inputText(task.input)}
      </pre>
      {/* Logs and progress: shown here once the API serves a task's log lines and progress. */}
    </section>
  );
}

/** Goes to a task by its id, wherever it is in the tree. */
function FindTask({ has, onFind }: { has: (id: string) => boolean; onFind: (id: string) => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string>();
  return (
    <form
      class="find-task"
      onSubmit={(e) => {
        e.preventDefault();
        const id = value.trim().replace(/^#/, "");
        if (!has(id)) return setError(`Task #${id} is not in this job.`);
        setError(undefined);
        onFind(id);
      }}
    >
      <label for="find-task">Task id</label>
      <input id="find-task" inputMode="numeric" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      <button type="submit">Show</button>
      <ErrorNote error={error} />
    </form>
  );
}

function JobSummary({ data, onChanged }: { data: GetJobResponse; onChanged: () => void }) {
  const job = data.job!;
  const state = jobStateName(job.state);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const act = async (what: "cancel" | "retry") => {
    if (what === "cancel" && !window.confirm(`Cancel job #${job.id} (${job.name})? Its queued tasks will not run.`)) return;
    setBusy(true);
    setError(undefined);
    try {
      if (what === "cancel") await jobsApi.cancelJob({ id: job.id });
      else await jobsApi.retryJob({ id: job.id });
      onChanged();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  const cancellable = state === "scheduled" || state === "queued" || state === "started";
  const retriable = state === "failed" || state === "cancelled";
  return (
    <>
      <PageHeader
        title={
          <>
            {job.name} <span class="muted">#{job.id}</span>
          </>
        }
      >
        <button type="button" class="danger" disabled={!cancellable || busy} onClick={() => act("cancel")}>
          Cancel job
        </button>
        <button type="button" disabled={!retriable || busy} onClick={() => act("retry")}>
          Retry job
        </button>
      </PageHeader>
      <ErrorNote error={error} />
      <dl class="facts inline">
        <dt>State</dt>
        <dd>
          <StateBadge state={state} />
        </dd>
        <dt>Cluster</dt>
        <dd>{job.cluster}</dd>
        <dt>Tasks</dt>
        <dd>
          <CountsBar counts={job.taskCounts} />
        </dd>
        <dt>Created</dt>
        <dd>{formatTime(job.createdAt)}</dd>
        {job.startAt && (
          <>
            <dt>Starts</dt>
            <dd>{formatTime(job.startAt)}</dd>
          </>
        )}
        <dt>Ran</dt>
        <dd>{job.startedAt ? elapsed(job.startedAt, job.finishedAt) : "not started"}</dd>
        {job.recurrentTaskId && (
          <>
            <dt>From</dt>
            <dd>
              <a href="#/recurrent">recurrent task {job.recurrentTaskId}</a>
            </dd>
          </>
        )}
      </dl>
    </>
  );
}

export function JobPage({ id, query }: { id: string; query: URLSearchParams }) {
  const [live, setLive] = useState(true);
  const [taskCount, setTaskCount] = useState(0);
  const loaded = usePolled(
    async () => {
      const res = await jobsApi.getJob({ id });
      setTaskCount(res.tasks.length);
      return res;
    },
    id,
    refreshMs(taskCount),
    live,
  );
  const [view, setView] = useState<GraphView>(emptyView);
  const selected = query.get("task") ?? undefined;
  const select = (taskId: string) => {
    const q = new URLSearchParams(query);
    q.set("task", taskId);
    navigate(`jobs/${id}`, q);
  };

  const tasks = loaded.data?.tasks;
  const byId = useMemo(() => new Map((tasks ?? []).map((t) => [t.id, t])), [tasks]);
  const index = useMemo(
    () =>
      indexTasks(
        (tasks ?? []).map(
          (t): GraphTask => ({ id: t.id, parentId: t.parentId, dependsOn: t.dependsOn, state: taskStateName(t.state), label: taskLabel(t) }),
        ),
      ),
    [tasks],
  );
  const selectedTask = selected ? byId.get(selected) : undefined;
  const failed = useMemo(() => (tasks ?? []).filter((t) => taskStateName(t.state) === "failed").slice(0, 20), [tasks]);

  return (
    <section class="job-page">
      <p class="crumbs">
        <a href="#/jobs">Jobs</a> / #{id}
        <LiveToggle live={live} onChange={setLive} loadedAt={loaded.loadedAt} />
      </p>
      <ErrorNote error={loaded.error} />
      {!loaded.data && !loaded.error && <p>Loading…</p>}
      {loaded.data && (
        <>
          <JobSummary data={loaded.data} onChanged={loaded.reload} />
          <div class="job-body">
            <TaskDiagram index={index} view={view} onView={setView} selected={selected} onSelect={select} />
            <aside class="side" aria-label="Selected task">
              <FindTask has={(taskId) => byId.has(taskId)} onFind={select} />
              {selectedTask ? (
                <TaskDetails
                  task={selectedTask}
                  byId={byId}
                  onSelect={select}
                  view={view}
                  onView={setView}
                  hasChildren={(index.children.get(selectedTask.id)?.length ?? 0) > 0}
                />
              ) : (
                <>
                  <p class="muted">Choose a task in the diagram (Tab, then Enter) to see its input, attempts and errors. Groups open with Enter.</p>
                  {failed.length > 0 && (
                    <>
                      <h2>Failed tasks</h2>
                      <ul class="plain">
                        {failed.map((t) => (
                          <li key={t.id}>
                            <button type="button" class="link" onClick={() => select(t.id)}>
                              {taskLabel(t)} #{t.id}
                            </button>
                            : {t.lastError?.message}
                          </li>
                        ))}
                      </ul>
                    </>
                  )}
                </>
              )}
            </aside>
          </div>
        </>
      )}
    </section>
  );
}
