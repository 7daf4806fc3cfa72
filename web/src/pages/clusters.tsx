import { clustersApi } from "../api.js";
import { ErrorNote, PageHeader } from "../components.js";
import { formatTime } from "../format.js";
import { usePolled } from "../hooks.js";

export function ClustersPage() {
  const list = usePolled(() => clustersApi.listClusters({}), "clusters", 10_000);
  const stats = usePolled(() => clustersApi.getQueueStats({ minutes: 1 }), "stats", 5000);
  const byCluster = new Map((stats.data?.queues ?? []).map((q) => [q.cluster, q]));
  return (
    <section>
      <PageHeader title="Clusters" />
      <ErrorNote error={list.error} />
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Slug</th>
            <th scope="col">Name</th>
            <th scope="col">Ready tasks</th>
            <th scope="col">Running tasks</th>
            <th scope="col">Created</th>
            <th scope="col">
              <span class="visually-hidden">Jobs</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {list.data?.clusters.map((c) => (
            <tr key={c.slug}>
              <th scope="row">
                <code>{c.slug}</code>
              </th>
              <td>{c.displayName}</td>
              <td>{byCluster.get(c.slug)?.ready.toLocaleString() ?? "…"}</td>
              <td>{byCluster.get(c.slug)?.running.toLocaleString() ?? "…"}</td>
              <td>{formatTime(c.createdAt)}</td>
              <td>
                <a href={`#/jobs?cluster=${encodeURIComponent(c.slug)}`}>Jobs on {c.slug}</a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {/* Connected runners per cluster: shown here once the API lists runners (ListRunners). */}
    </section>
  );
}
