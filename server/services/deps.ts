import type { ConnectError } from "@connectrpc/connect";
import type { Sql } from "postgres";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import type { Clock } from "../maintenance/clock.js";
import type { ClusterDirectory } from "../store/clusters.js";
import type { AttemptKeys } from "../hook/attempt-keys.js";
import { notFound } from "../validation.js";

/** What the API services need from the server. */
export interface ServiceDeps {
  /** The queue's pool: submits, leases, completions and every write. */
  sql: Sql;
  /** Listings and reports, planned by PostgreSQL's own settings. */
  reads: Sql;
  clusters: ClusterDirectory;
  dispatcher: Dispatcher;
  leaseTtlMs: number;
  /** The scheduler's clock: cron ticks are computed from it. */
  clock: Clock;
  /** The job hook's secrets, for the assignments of process tasks. */
  attemptKeys?: AttemptKeys;
}

/** Resolves cluster slugs to ids, failing with NotFound for the first unknown one. */
export async function requireClusters(clusters: ClusterDirectory, slugs: readonly string[]): Promise<Map<string, number>> {
  const ids = await clusters.ids(slugs);
  for (const slug of slugs) if (!ids.has(slug)) throw missingCluster(slug);
  return ids;
}

/** NotFound for a cluster slug that names no cluster. */
export function missingCluster(slug: string): ConnectError {
  return notFound(`cluster "${slug}" does not exist: create it first (sluice clusters create ${slug})`);
}
