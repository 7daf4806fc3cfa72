import { createHash, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import type { Sql } from "postgres";
import { sameSecret } from "../auth/secrets.js";
import { addJobFile, readAttempt, takePendingUpload } from "../store/job-hook.js";
import { type BlobStore, FolderBlobStore } from "./blob-store.js";
import { HookError } from "./job-hook-auth.js";

/** How long an upload URL works. */
export const UPLOAD_URL_TTL_MS = 60 * 60_000;

/**
 * Content uploaded through job hooks, checked on its way in and kept once
 * per MD5 in a blob store (the server's folder, or an S3 location), and the
 * URLs the hook hands out for it: an upload URL carries an id made for one
 * announced upload; a folder's download URL a signature with an expiry.
 */
export class JobFiles {
  constructor(
    private readonly sql: Sql,
    /** The folder for files being received, and for content when `blobs` is that folder. */
    readonly dir: string,
    readonly blobs: BlobStore,
    /** The base the URLs are made from (SLUICE_PUBLIC_URL or the server's address). */
    private readonly baseUrl: () => string,
  ) {}

  uploadUrl(id: string): string {
    return `${this.baseUrl()}/job-files/uploads/${id}`;
  }

  downloadUrl(hash: string): Promise<string> {
    return this.blobs.downloadUrl(hash);
  }

  /**
   * Receives the bytes of an announced upload: kept only if they match both
   * hashes announced and the attempt still runs; otherwise nothing is kept.
   */
  async receive(uploadId: string, body: AsyncIterable<Buffer>, maxBytes: number): Promise<{ index: number }> {
    const upload = /^[0-9a-f-]{36}$/.test(uploadId) ? await takePendingUpload(this.sql, uploadId) : null;
    if (!upload) throw new HookError(404, "no upload waits at this URL (it was used, expired, or never announced): announce it again with PUT {JOB_HOOK}/upload/...");
    const attempt = await readAttempt(this.sql, upload.taskId);
    if (!attempt || attempt.state !== "running" || attempt.lease !== upload.lease) {
      throw new HookError(401, `attempt ${upload.taskId}.${upload.lease} that announced this upload has ended`);
    }
    await mkdir(join(this.dir, "tmp"), { recursive: true });
    const tmp = join(this.dir, "tmp", randomUUID());
    const md5 = createHash("md5");
    const challenge = createHash("md5").update("WEBDA");
    let size = 0;
    try {
      const count = new Transform({
        transform(chunk: Buffer, _enc, done) {
          size += chunk.length;
          if (size > maxBytes) return done(new HookError(413, `the upload is larger than ${maxBytes} bytes (SLUICE_JOB_FILE_MAX_BYTES)`));
          md5.update(chunk);
          challenge.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(body, count, createWriteStream(tmp));
      if (md5.digest("hex") !== upload.hash || challenge.digest("hex") !== upload.challenge) {
        throw new HookError(400, "the bytes do not match the hash and challenge announced: nothing was kept; announce the upload again");
      }
      await this.blobs.put(upload.hash, tmp, size);
      const index = await addJobFile(this.sql, upload, upload.hash, upload.metadata, upload, size);
      return { index };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Opens the content a download URL of the folder store names, once its signature and expiry are checked. */
  async open(hash: string, query: URLSearchParams, now = Date.now()): Promise<{ size: number; stream: NodeJS.ReadableStream }> {
    const folder = this.blobs instanceof FolderBlobStore ? this.blobs : null;
    const expires = query.get("expires") ?? "";
    const signature = query.get("signature") ?? "";
    if (!folder || !/^[0-9a-f]{32}$/.test(hash) || !/^\d{1,16}$/.test(expires) || !sameSecret(signature, folder.signature(hash, expires))) {
      throw new HookError(403, "this download URL is not one the server made: ask the job hook for a new one (GET {JOB_HOOK}/download/...)");
    }
    if (Number(expires) < now) throw new HookError(403, "this download URL has expired: ask the job hook for a new one");
    const path = folder.path(hash);
    const info = await stat(path).catch(() => null);
    if (!info) throw new HookError(404, `content ${hash} is not stored on this server`);
    return { size: info.size, stream: createReadStream(path) };
  }

}
