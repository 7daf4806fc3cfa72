import { createHmac } from "node:crypto";

/** An attempt of a task: the task and the lease it runs under. */
export interface Attempt {
  taskId: string;
  lease: number;
}

/** JOB_ID of an attempt: "TASK_ID.LEASE". */
export function attemptJobId(a: Attempt): string {
  return `${a.taskId}.${a.lease}`;
}

/** The attempt an X-Job-Id names, or null when it has not the shape of one. */
export function parseAttemptJobId(jobId: string): Attempt | null {
  const m = /^([1-9]\d{0,18})\.([1-9]\d{0,9})$/.exec(jobId);
  if (!m || Number(m[2]) > 2 ** 31 - 1) return null;
  return { taskId: m[1], lease: Number(m[2]) };
}

/**
 * The secrets of attempts, derived from the server key (HMAC-SHA256 of the
 * JOB_ID): every server of one database derives the same, and nothing is
 * written when a task is leased. A secret is good for one attempt only: a new
 * lease is a new JOB_ID.
 */
export class AttemptKeys {
  /** JOB_HOOK, set once the server knows its address (SLUICE_PUBLIC_URL or its own). */
  hookUrl = "";

  constructor(private readonly key: Buffer) {}

  secretOf(jobId: string): string {
    return createHmac("sha256", this.key).update(`attempt ${jobId}`).digest("hex");
  }

  /** A signature over `text`, for URLs the server hands out (downloads). */
  sign(text: string): string {
    return createHmac("sha256", this.key).update(`url ${text}`).digest("base64url");
  }

  access(a: Attempt): { jobId: string; secretKey: string; url: string } {
    const jobId = attemptJobId(a);
    return { jobId, secretKey: this.secretOf(jobId), url: this.hookUrl };
  }
}
