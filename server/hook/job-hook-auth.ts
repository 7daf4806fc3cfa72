import { createHmac } from "node:crypto";
import type { Sql } from "postgres";
import { sameSecret } from "../auth/secrets.js";
import { readAttempt } from "../store/job-hook.js";
import { type Attempt, type AttemptKeys, parseAttemptJobId } from "./attempt-keys.js";

/** How far X-Job-Time may be from the server's clock: farther is a replay, or a clock to fix. */
export const JOB_TIME_WINDOW_MS = 5 * 60_000;

/** A refused hook call: its HTTP status and why. */
export class HookError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** An authenticated hook call's attempt: running now, under the lease its JOB_ID names. */
export interface HookCaller extends Attempt {
  jobId: string;
}

type Headers = Record<string, string | string[] | undefined>;

const header = (headers: Headers, name: string): string | undefined => {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Checks a hook call's X-Job-Id, X-Job-Time and X-Job-Hash (the hex
 * HMAC-SHA256 of the time string keyed with the attempt's secret, as the
 * seed's `job_headers()` makes it) and that the attempt still runs. Every
 * refusal is 401 with the reason.
 */
export async function authenticateHookCall(sql: Sql, keys: AttemptKeys, headers: Headers, now = Date.now()): Promise<HookCaller> {
  const id = header(headers, "x-job-id");
  const time = header(headers, "x-job-time");
  const hash = header(headers, "x-job-hash");
  if (!id || !time || !hash) throw new HookError(401, "X-Job-Id, X-Job-Time and X-Job-Hash are required (see job_headers() in docs/process-tasks.md)");
  const attempt = parseAttemptJobId(id);
  if (!attempt) throw new HookError(401, `unknown job ${JSON.stringify(id)}: JOB_ID has the form TASK_ID.ATTEMPT, as the runner set it`);
  if (!/^\d{1,16}$/.test(time)) throw new HookError(401, `X-Job-Time must be milliseconds since the epoch, got ${JSON.stringify(time)}`);
  const skew = Number(time) - now;
  if (Math.abs(skew) > JOB_TIME_WINDOW_MS) {
    throw new HookError(401, `X-Job-Time is ${Math.round(skew / 1000)} s off the server's clock (at most ${JOB_TIME_WINDOW_MS / 1000} s): send the current time, and check the clocks`);
  }
  const expected = createHmac("sha256", keys.secretOf(id)).update(time).digest("hex");
  if (!sameSecret(hash.toLowerCase(), expected)) throw new HookError(401, "X-Job-Hash does not match: sign X-Job-Time with the attempt's JOB_SECRET_KEY (HMAC-SHA256, hex)");
  const row = await readAttempt(sql, attempt.taskId);
  if (!row) throw new HookError(401, `unknown job ${id}: task ${attempt.taskId} does not exist (its job may have been deleted)`);
  if (row.state !== "running" || row.lease !== attempt.lease) {
    throw new HookError(401, `attempt ${id} has ended: task ${attempt.taskId} is ${row.state}${row.lease !== attempt.lease ? ` (attempt ${row.lease} is the latest)` : ""}`);
  }
  return { ...attempt, jobId: row.jobId };
}
