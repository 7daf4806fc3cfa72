import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { ClusterSchema, ClusterService, type QueueStats, QueueStatsSchema } from "../../gen/sluice/v1/cluster_service_pb.js";
import { type ClusterRow, createCluster, deleteCluster, getCluster, listClusters } from "../store/clusters.js";
import { finishedJobsPerMinute, queueCounts } from "../store/queue-stats.js";
import { checkSlug, failedPrecondition, invalid, notFound } from "../validation.js";
import type { ServiceDeps } from "./deps.js";

const DEFAULT_THROUGHPUT_MINUTES = 15;
const MAX_THROUGHPUT_MINUTES = 60;
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

const toProto = (r: ClusterRow) =>
  create(ClusterSchema, { slug: r.slug, displayName: r.display_name, createdAt: timestampFromDate(r.created_at) });

export function clusterService({ sql, reads, clusters }: ServiceDeps): ServiceImpl<typeof ClusterService> {
  return {
    async createCluster(req) {
      const slug = checkSlug(req.slug);
      const row = await createCluster(sql, slug, req.displayName.trim() || slug);
      if (!row) throw new ConnectError(`cluster "${slug}" already exists`, Code.AlreadyExists);
      return { cluster: toProto(row) };
    },
    async getCluster(req) {
      const row = await getCluster(sql, req.slug);
      if (!row) throw notFound(`cluster "${req.slug}" does not exist`);
      return { cluster: toProto(row) };
    },
    async listClusters() {
      return { clusters: (await listClusters(reads)).map(toProto) };
    },
    async deleteCluster(req) {
      if (req.slug === "default") throw failedPrecondition(`cluster "default" always exists and cannot be deleted`);
      const outcome = await deleteCluster(sql, req.slug);
      if (outcome === "missing") throw notFound(`cluster "${req.slug}" does not exist`);
      if (outcome === "in-use") throw failedPrecondition(`cluster "${req.slug}" still has jobs or recurrent tasks; it can only be deleted while it has none`);
      clusters.forget(req.slug);
      return {};
    },
    async getQueueStats(req) {
      if (req.minutes > MAX_THROUGHPUT_MINUTES) throw invalid(`minutes is ${req.minutes}; ask for 1 to ${MAX_THROUGHPUT_MINUTES} minutes (0 for ${DEFAULT_THROUGHPUT_MINUTES})`);
      const minutes = req.minutes === 0 ? DEFAULT_THROUGHPUT_MINUTES : req.minutes;
      const now = Date.now();
      const hourAgo = new Date(now - HOUR_MS);
      const firstMinute = Math.floor(now / MINUTE_MS) * MINUTE_MS - (minutes - 1) * MINUTE_MS;
      const [counts, finished] = await Promise.all([queueCounts(reads), finishedJobsPerMinute(reads, hourAgo)]);
      const byCluster = new Map<number, QueueStats>();
      for (const c of counts) {
        byCluster.set(
          c.cluster_id,
          create(QueueStatsSchema, {
            cluster: await clusters.slug(c.cluster_id),
            ready: c.ready,
            running: c.running,
            throughput: Array.from({ length: minutes }, (_, i) => ({ start: timestampFromDate(new Date(firstMinute + i * MINUTE_MS)) })),
          }),
        );
      }
      for (const f of finished) {
        const q = byCluster.get(f.cluster_id);
        if (!q) continue;
        q.completedLastHour += f.completed;
        q.failedLastHour += f.failed;
        const i = (f.minute.getTime() - firstMinute) / MINUTE_MS;
        if (i >= 0 && i < minutes) {
          q.throughput[i].completed += f.completed;
          q.throughput[i].failed += f.failed;
        }
      }
      return { queues: [...byCluster.values()].sort((a, b) => a.cluster.localeCompare(b.cluster)) };
    },
  };
}
