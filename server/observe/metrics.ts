import { Counter, Gauge, Registry } from "prom-client";
import { BatchHistogram, type HistogramSeries } from "./batch-histogram.js";
import type { Sql } from "postgres";
import { type QueueGaugesRow, databaseConnections, queueGauges } from "../store/queue-stats.js";

/** Seconds: from a millisecond to ten minutes. */
const TIME_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600];

/** Counters of one cluster, made once per cluster so that the hot path only adds. */
export interface ClusterCounters {
  leased: Counter.Internal;
  computed: Counter.Internal;
  failed: Counter.Internal;
  retried: Counter.Internal;
  released: Counter.Internal;
  refused: Counter.Internal;
  waited: HistogramSeries;
  executed: HistogramSeries;
}

/**
 * The server's Prometheus metrics (prom-client), served at /metrics. Counters
 * are added to from batches (a lease, a results message); the queue, runner
 * and pool gauges are read when /metrics is scraped, with one statement.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly perCluster = new Map<string, ClusterCounters>();
  private readonly leased = new Counter({ name: "sluice_tasks_leased_total", help: "Tasks leased to runners.", labelNames: ["cluster"], registers: [this.registry] });
  private readonly results = new Counter({
    name: "sluice_task_results_total",
    help: "Task results runners reported, by outcome: computed, failed (an attempt that threw), released (given back unstarted), refused (not recorded).",
    labelNames: ["cluster", "outcome"],
    registers: [this.registry],
  });
  private readonly retried = new Counter({
    name: "sluice_tasks_retried_total",
    help: "Failed attempts after which the task was queued again (it had retries left).",
    labelNames: ["cluster"],
    registers: [this.registry],
  });
  readonly jobsFailed = new Counter({ name: "sluice_jobs_failed_total", help: "Jobs that failed.", registers: [this.registry] });
  readonly leaseExpiries = new Counter({
    name: "sluice_lease_expiries_total",
    help: "Tasks whose lease ran out (their runner went silent): queued again or failed.",
    registers: [this.registry],
  });
  readonly logLines = new Counter({ name: "sluice_task_log_lines_total", help: "Task log lines kept.", registers: [this.registry] });
  private readonly waited = new BatchHistogram(
    "sluice_task_wait_seconds",
    "From a task's creation (its job's submit, or its parent's completion) to its first lease.",
    TIME_BUCKETS,
    this.registry,
  );
  private readonly executed = new BatchHistogram(
    "sluice_task_execution_seconds",
    "From a task's lease to its result arriving at the server (execution plus the runner's queueing and reporting).",
    TIME_BUCKETS,
    this.registry,
  );

  constructor(
    sql: Sql,
    /** Runners with a session open on this server. */
    connectedRunners: () => number,
    poolSize: number,
    /** Runners are counted while their server said this recently that their session is open. */
    freshMs: number,
  ) {
    const registers = [this.registry];
    // One statement per scrape fills the three queue gauges: the first to
    // collect reads, the others use what it read.
    let read: ReturnType<typeof queueGauges> | null = null;
    const once = () => (read ??= queueGauges(sql, freshMs).finally(() => setImmediate(() => (read = null))));
    const perCluster = (name: string, help: string, value: (r: QueueGaugesRow) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["cluster"],
        registers,
        async collect() {
          const rows = await once();
          this.reset();
          for (const r of rows) this.set({ cluster: r.cluster }, value(r));
        },
      });
    perCluster("sluice_queue_ready_tasks", "Tasks ready to run (queued, no dependency left), per cluster.", (r) => r.ready);
    perCluster("sluice_queue_oldest_ready_seconds", "Age of the oldest ready task per cluster (0 when none is ready).", (r) => r.oldest_seconds);
    perCluster("sluice_runners_connected", "Runners connected to any server of the database, per cluster.", (r) => r.runners);
    new Gauge({
      name: "sluice_server_runners_connected",
      help: "Runners with a session open on this server.",
      registers,
      collect() {
        this.set(connectedRunners());
      },
    });
    new Gauge({ name: "sluice_db_pool_size", help: "Connections this server's database pool may open.", registers }).set(poolSize);
    new Gauge({
      name: "sluice_db_connections",
      help: "Connections to the database by state (active, idle, ...), from every server and client (pg_stat_activity).",
      labelNames: ["state"],
      registers,
      async collect() {
        const rows = await databaseConnections(sql);
        this.reset();
        for (const r of rows) this.set({ state: r.state }, r.n);
      },
    });
  }

  /** The counters of one cluster. */
  cluster(slug: string): ClusterCounters {
    let c = this.perCluster.get(slug);
    if (!c) {
      const labels = { cluster: slug };
      c = {
        leased: this.leased.labels(labels),
        computed: this.results.labels({ ...labels, outcome: "computed" }),
        failed: this.results.labels({ ...labels, outcome: "failed" }),
        released: this.results.labels({ ...labels, outcome: "released" }),
        refused: this.results.labels({ ...labels, outcome: "refused" }),
        retried: this.retried.labels(labels),
        waited: this.waited.labels(labels),
        executed: this.executed.labels(labels),
      };
      this.perCluster.set(slug, c);
    }
    return c;
  }

  /** The metrics in Prometheus's text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
