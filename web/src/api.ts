import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ClusterService } from "../../gen/sluice/v1/cluster_service_pb.js";
import { JobService } from "../../gen/sluice/v1/job_service_pb.js";
import { RecurrentTaskService } from "../../gen/sluice/v1/recurrent_task_service_pb.js";
import { StorageService } from "../../gen/sluice/v1/storage_service_pb.js";

const TOKEN_KEY = "sluice.token";

/** The API token, kept for the browser tab's session only (sessionStorage). */
export const apiToken = {
  get: (): string => sessionStorage.getItem(TOKEN_KEY) ?? "",
  set(value: string): void {
    if (value.trim() === "") sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, value.trim());
  },
};

/** Sends the token, when there is one, as every other client of the API does. */
const bearer: Interceptor = (next) => (req) => {
  const token = apiToken.get();
  if (token !== "") req.header.set("Authorization", `Bearer ${token}`);
  return next(req);
};

// The console is served by the server it talks to. The binary format: a job
// of many tasks is smaller and cheaper to decode than in JSON (inputs are bytes).
const transport = createConnectTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [bearer],
});

export const jobsApi = createClient(JobService, transport);
export const clustersApi = createClient(ClusterService, transport);
export const recurrentApi = createClient(RecurrentTaskService, transport);
export const storageApi = createClient(StorageService, transport);
// Runners (ListRunners) are not in the API yet: a runners client and page go here once they are.
