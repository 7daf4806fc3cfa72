import { createHmac } from "node:crypto";
import type { JobHookAccess } from "./process-task.js";

/** The headers of a job hook call, as the seed's `job_headers()` makes them. */
export function jobHookHeaders(access: Pick<JobHookAccess, "jobId" | "secretKey">, now = Date.now()): Record<string, string> {
  const time = String(now);
  return {
    "X-Job-Id": access.jobId,
    "X-Job-Time": time,
    "X-Job-Hash": createHmac("sha256", access.secretKey).update(time).digest("hex"),
  };
}

/** POSTs JSON to a path of an attempt's job hook; throws with the server's reason on a refusal. */
export async function postJobHook(access: JobHookAccess, path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
  const res = await fetch(`${access.url}${path}`, {
    method: "POST",
    headers: { ...jobHookHeaders(access), "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`job hook ${path} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}
