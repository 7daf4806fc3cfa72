import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { ClusterSchema, ClusterService } from "../../gen/sluice/v1/cluster_service_pb.js";
import { type ClusterRow, createCluster, deleteCluster, getCluster, listClusters } from "../store/clusters.js";
import { checkSlug, failedPrecondition, notFound } from "../validation.js";
import type { ServiceDeps } from "./deps.js";

const toProto = (r: ClusterRow) =>
  create(ClusterSchema, { slug: r.slug, displayName: r.display_name, createdAt: timestampFromDate(r.created_at) });

export function clusterService({ sql, clusters }: ServiceDeps): ServiceImpl<typeof ClusterService> {
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
      return { clusters: (await listClusters(sql)).map(toProto) };
    },
    async deleteCluster(req) {
      if (req.slug === "default") throw failedPrecondition(`cluster "default" always exists and cannot be deleted`);
      const outcome = await deleteCluster(sql, req.slug);
      if (outcome === "missing") throw notFound(`cluster "${req.slug}" does not exist`);
      if (outcome === "in-use") throw failedPrecondition(`cluster "${req.slug}" still has jobs or recurrent tasks; it can only be deleted while it has none`);
      clusters.forget(req.slug);
      return {};
    },
  };
}
