import type { Registry } from "prom-client";

/** One label set's buckets. */
export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last is +Inf. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  /** Adds one observation: a few comparisons, no allocation, no label lookup. */
  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A Prometheus histogram whose series are looked up once (per cluster) and
 * then observed with a few comparisons. prom-client's Histogram checks and
 * hashes the labels on every observation, which is too much once per task.
 * Registered in a prom-client Registry, which renders it like its own.
 */
export class BatchHistogram {
  readonly type = "histogram";
  private readonly series = new Map<string, { labels: Record<string, string>; s: HistogramSeries }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  /** The series of these labels (made on first use). */
  labels(labels: Record<string, string>): HistogramSeries {
    const key = JSON.stringify(labels);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels, s: new HistogramSeries(this.bounds) };
      this.series.set(key, entry);
    }
    return entry.s;
  }

  /** What prom-client's registry renders. */
  async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const { labels, s } of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i];
        values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...labels, le: "+Inf" }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: "sum" };
  }

  reset(): void {
    this.series.clear();
  }
}
