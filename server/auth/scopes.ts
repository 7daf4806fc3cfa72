import type { DescMethod } from "@bufbuild/protobuf";
import type { ScopeName } from "../store/tokens.js";

/** Scopes and what each includes besides itself. */
const INCLUDES: Record<ScopeName, readonly ScopeName[]> = {
  admin: ["admin", "submit", "runner", "read"],
  submit: ["submit", "read"],
  runner: ["runner"],
  read: ["read"],
};

/** Whether a token with these scopes may do what `needed` allows. */
export function allows(scopes: readonly ScopeName[], needed: ScopeName): boolean {
  return scopes.some((s) => INCLUDES[s]?.includes(needed));
}

/** Methods that need more than their name says (see `requiredScope`). */
const SCOPES: Record<string, ScopeName> = {
  "sluice.v1.JobService/SubmitJob": "submit",
  "sluice.v1.JobService/SubmitJobs": "submit",
  "sluice.v1.JobService/SubmitStream": "submit",
  "sluice.v1.JobService/CancelJob": "submit",
  "sluice.v1.JobService/RetryJob": "submit",
  "sluice.v1.StorageService/ReportObjectEvents": "submit",
  "sluice.v1.RunnerService/Session": "runner",
  "sluice.v1.ObservabilityService/TailJobLogs": "read",
  "sluice.v1.FileService/SubmitFileWorkflow": "submit",
  "sluice.v1.FileService/StagePaths": "submit",
  // The runner holding a file task's lease reads its paths and reports their states.
  "sluice.v1.FileService/ListTaskPaths": "runner",
  "sluice.v1.FileService/ReportPathStates": "runner",
};

/** Services anyone may call: health checks and (unless configured otherwise) reflection. */
const HEALTH = "grpc.health.v1.Health";
const REFLECTION = new Set(["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);

/**
 * The scope a method needs, or null for one anyone may call. Reads (Get,
 * List, Count) need read; the token service and every other change need admin.
 */
export function requiredScope(method: DescMethod, openReflection: boolean): ScopeName | null {
  const service = method.parent.typeName;
  if (service === HEALTH || (openReflection && REFLECTION.has(service))) return null;
  const named = SCOPES[`${service}/${method.name}`];
  if (named) return named;
  if (service !== "sluice.v1.TokenService" && /^(Get|List|Count)/.test(method.name)) return "read";
  return "admin";
}
