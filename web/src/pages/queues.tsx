import type { QueueStats } from "../../../gen/sluice/v1/cluster_service_pb.js";
import { clustersApi } from "../api.js";
import { ErrorNote, PageHeader } from "../components.js";
import { formatClock, toDate } from "../format.js";
import { usePolled } from "../hooks.js";

const MINUTES = 15;

/** Jobs finished per minute as stacked bars (completed, failed). */
function ThroughputChart({ queue }: { queue: QueueStats }) {
  const width = 300;
  const height = 72;
  const buckets = queue.throughput;
  const peak = Math.max(1, ...buckets.map((b) => b.completed + b.failed));
  const bar = width / Math.max(1, buckets.length);
  const total = buckets.reduce((n, b) => n + b.completed + b.failed, 0);
  const first = toDate(buckets[0]?.start);
  const label = `${total.toLocaleString()} jobs finished in the last ${buckets.length} minutes, at most ${peak.toLocaleString()} in a minute`;
  return (
    <figure class="chart">
      <svg width={width} height={height + 14} role="img" aria-label={label}>
        <title>{label}</title>
        <line x1={0} y1={height} x2={width} y2={height} class="axis" />
        {buckets.map((b, i) => {
          const hc = (b.completed / peak) * (height - 4);
          const hf = (b.failed / peak) * (height - 4);
          return (
            <g key={i}>
              <rect x={i * bar + 1} y={height - hc} width={bar - 2} height={hc} class="fill-computed" />
              <rect x={i * bar + 1} y={height - hc - hf} width={bar - 2} height={hf} class="fill-failed" />
            </g>
          );
        })}
        {first && (
          <text x={0} y={height + 12} class="axis-label">
            {formatClock(first)}
          </text>
        )}
        <text x={width} y={height + 12} class="axis-label" text-anchor="end">
          now
        </text>
      </svg>
      <figcaption class="muted">Jobs finished per minute (peak {peak.toLocaleString()})</figcaption>
    </figure>
  );
}

export function QueuesPage() {
  const stats = usePolled(() => clustersApi.getQueueStats({ minutes: MINUTES }), "queues", 5000);
  return (
    <section>
      <PageHeader title="Queues at a glance" />
      <ErrorNote error={stats.error} />
      <div class="cards">
        {stats.data?.queues.map((q) => (
          <article key={q.cluster} class="card" aria-labelledby={`q-${q.cluster}`} data-cluster={q.cluster}>
            <h2 id={`q-${q.cluster}`}>
              <a href={`#/jobs?cluster=${encodeURIComponent(q.cluster)}`}>{q.cluster}</a>
            </h2>
            <dl class="numbers">
              <div>
                <dt>Ready</dt>
                <dd data-stat="ready">{q.ready.toLocaleString()}</dd>
              </div>
              <div>
                <dt>Running</dt>
                <dd data-stat="running">{q.running.toLocaleString()}</dd>
              </div>
              <div>
                <dt>Completed, last hour</dt>
                <dd data-stat="completed">{q.completedLastHour.toLocaleString()}</dd>
              </div>
              <div>
                <dt>Failed, last hour</dt>
                <dd data-stat="failed" class={q.failedLastHour > 0 ? "bad" : undefined}>
                  <a href={`#/jobs?cluster=${encodeURIComponent(q.cluster)}&state=failed&range=1h`}>{q.failedLastHour.toLocaleString()}</a>
                </dd>
              </div>
            </dl>
            <ThroughputChart queue={q} />
          </article>
        ))}
      </div>
    </section>
  );
}
