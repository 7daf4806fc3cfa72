import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client as ConnectClient } from "@connectrpc/connect";
import { type Cluster as ClusterMessage, ClusterService } from "../../gen/sluice/v1/cluster_service_pb.js";

export interface Cluster {
  slug: string;
  displayName: string;
  createdAt: Date;
}

const fromMessage = (c: ClusterMessage): Cluster => ({
  slug: c.slug,
  displayName: c.displayName,
  createdAt: c.createdAt ? timestampDate(c.createdAt) : new Date(0),
});

/** Creates, lists and deletes clusters. */
export class ClusterClient {
  constructor(private readonly api: ConnectClient<typeof ClusterService>) {}

  async create(slug: string, displayName = ""): Promise<Cluster> {
    return fromMessage((await this.api.createCluster({ slug, displayName })).cluster!);
  }

  async get(slug: string): Promise<Cluster> {
    return fromMessage((await this.api.getCluster({ slug })).cluster!);
  }

  async list(): Promise<Cluster[]> {
    return (await this.api.listClusters({})).clusters.map(fromMessage);
  }

  async delete(slug: string): Promise<void> {
    await this.api.deleteCluster({ slug });
  }
}
