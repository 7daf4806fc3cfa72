import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import { clustersApi, jobsApi } from "../api.js";
import { CountsBar, ErrorNote, LiveToggle, PageHeader, StateBadge } from "../components.js";
import { JOB_STATES, type JobStateName, elapsed, formatTime, jobStateEnum, jobStateName } from "../format.js";
import { navigate, usePolled } from "../hooks.js";

const PAGE_SIZE = 50;
const REFRESH_MS = 3000;

// The default range is a day: the counts per state read every matching job, on every refresh.
const DEFAULT_RANGE = "24h";
const RANGES: { value: string; label: string; ms?: number }[] = [
  { value: "15m", label: "Last 15 minutes", ms: 15 * 60_000 },
  { value: "1h", label: "Last hour", ms: 3_600_000 },
  { value: "24h", label: "Last 24 hours", ms: 86_400_000 },
  { value: "7d", label: "Last 7 days", ms: 7 * 86_400_000 },
  { value: "custom", label: "Between…" },
  { value: "all", label: "Any time" },
];

interface Filter {
  state: JobStateName | "";
  cluster: string;
  name: string;
  range: string;
  from: string;
  to: string;
}

function filterOf(q: URLSearchParams): Filter {
  const state = q.get("state") ?? "";
  return {
    state: (JOB_STATES as string[]).includes(state) ? (state as JobStateName) : "",
    cluster: q.get("cluster") ?? "",
    name: q.get("name") ?? "",
    range: q.get("range") || DEFAULT_RANGE,
    from: q.get("from") ?? "",
    to: q.get("to") ?? "",
  };
}

function queryOf(f: Filter): URLSearchParams {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v !== "" && !(k === "range" && v === DEFAULT_RANGE)) q.set(k, v);
  return q;
}

/** The filter's time range as request fields. */
function timeRange(f: Filter) {
  const range = RANGES.find((r) => r.value === f.range);
  if (range?.ms) return { createdAfter: timestampFromDate(new Date(Date.now() - range.ms)) };
  if (f.range === "custom") {
    const from = f.from ? new Date(f.from) : undefined;
    const to = f.to ? new Date(f.to) : undefined;
    return {
      createdAfter: from && !Number.isNaN(from.getTime()) ? timestampFromDate(from) : undefined,
      createdBefore: to && !Number.isNaN(to.getTime()) ? timestampFromDate(to) : undefined,
    };
  }
  return {};
}

export function JobsPage({ query }: { query: URLSearchParams }) {
  const filter = filterOf(query);
  const [live, setLive] = useState(true);
  // Page tokens of the pages before this one; the last is this page's.
  const [pages, setPages] = useState<string[]>([""]);
  const [nameDraft, setNameDraft] = useState(filter.name);
  const key = JSON.stringify(filter);
  const [pagesKey, setPagesKey] = useState(key);
  if (pagesKey !== key) {
    setPagesKey(key);
    setPages([""]);
  }
  const pageToken = pages[pages.length - 1];
  const update = (change: Partial<Filter>) => navigate("jobs", queryOf({ ...filter, ...change }));

  const clusters = usePolled(() => clustersApi.listClusters({}), "clusters", 30_000);
  const list = usePolled(
    () =>
      jobsApi.listJobs({
        states: filter.state ? [jobStateEnum[filter.state]] : [],
        cluster: filter.cluster,
        name: filter.name,
        pageSize: PAGE_SIZE,
        pageToken,
        ...timeRange(filter),
      }),
    `${key}|${pageToken}`,
    REFRESH_MS,
    live,
  );
  const counts = usePolled(() => jobsApi.countJobs({ cluster: filter.cluster, name: filter.name, ...timeRange(filter) }), key, REFRESH_MS, live);

  return (
    <section aria-labelledby="jobs-title">
      <PageHeader title={<span id="jobs-title">Jobs</span>}>
        <LiveToggle live={live} onChange={setLive} loadedAt={list.loadedAt} />
      </PageHeader>

      <div class="state-counts" role="group" aria-label="Jobs per state; choose one to filter">
        <button type="button" class="count-chip" aria-pressed={filter.state === ""} onClick={() => update({ state: "" })}>
          <span class="count-label">all</span>
          <span class="count-value">{counts.data ? JOB_STATES.reduce((n, s) => n + counts.data![s], 0).toLocaleString() : "…"}</span>
        </button>
        {JOB_STATES.map((s) => (
          <button
            key={s}
            type="button"
            class={`count-chip chip-${s}`}
            aria-pressed={filter.state === s}
            data-state={s}
            onClick={() => update({ state: filter.state === s ? "" : s })}
          >
            <span class="count-label">{s}</span>
            <span class="count-value">{counts.data ? counts.data[s].toLocaleString() : "…"}</span>
          </button>
        ))}
      </div>

      <form
        class="filters"
        aria-label="Filter jobs"
        onSubmit={(e) => {
          e.preventDefault();
          update({ name: nameDraft });
        }}
      >
        <label>
          State
          <select value={filter.state} onChange={(e) => update({ state: e.currentTarget.value as JobStateName })}>
            <option value="">Any</option>
            {JOB_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Cluster
          <select value={filter.cluster} onChange={(e) => update({ cluster: e.currentTarget.value })}>
            <option value="">Any</option>
            {clusters.data?.clusters.map((c) => (
              <option key={c.slug} value={c.slug}>
                {c.slug}
              </option>
            ))}
          </select>
        </label>
        <label>
          Name contains
          <input type="search" value={nameDraft} onInput={(e) => setNameDraft(e.currentTarget.value)} onBlur={() => nameDraft !== filter.name && update({ name: nameDraft })} />
        </label>
        <label>
          Created
          <select value={filter.range} onChange={(e) => update({ range: e.currentTarget.value })}>
            {RANGES.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        {filter.range === "custom" && (
          <>
            <label>
              From
              <input type="datetime-local" value={filter.from} onChange={(e) => update({ from: e.currentTarget.value })} />
            </label>
            <label>
              To
              <input type="datetime-local" value={filter.to} onChange={(e) => update({ to: e.currentTarget.value })} />
            </label>
          </>
        )}
        <button type="submit" class="visually-hidden">
          Apply
        </button>
      </form>

      <ErrorNote error={list.error ?? counts.error} />

      <table class="grid jobs-table">
        <caption class="visually-hidden">Jobs, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">Name</th>
            <th scope="col">Cluster</th>
            <th scope="col">State</th>
            <th scope="col">Tasks</th>
            <th scope="col">Created</th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.jobs.map((j) => (
            <tr key={j.id} data-job-id={j.id}>
              <td>
                <a href={`#/jobs/${j.id}`}>#{j.id}</a>
              </td>
              <td class="name">{j.name}</td>
              <td>{j.cluster}</td>
              <td>
                <StateBadge state={jobStateName(j.state)} />
              </td>
              <td>
                <CountsBar counts={j.taskCounts} />
              </td>
              <td>{formatTime(j.createdAt)}</td>
              <td>{j.startedAt ? elapsed(j.startedAt, j.finishedAt) : "–"}</td>
            </tr>
          ))}
          {list.data && list.data.jobs.length === 0 && (
            <tr>
              <td colSpan={7} class="empty">
                No jobs match.
              </td>
            </tr>
          )}
          {!list.data && !list.error && (
            <tr>
              <td colSpan={7} class="empty">
                Loading…
              </td>
            </tr>
          )}
        </tbody>
      </table>

      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={pages.length === 1} onClick={() => setPages(pages.slice(0, -1))}>
          ← Newer
        </button>
        <span>Page {pages.length}</span>
        <button type="button" disabled={!list.data?.nextPageToken} onClick={() => setPages([...pages, list.data!.nextPageToken])}>
          Older →
        </button>
      </nav>
    </section>
  );
}
