import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { fromJson, toJson } from "@bufbuild/protobuf";
import type { Sql } from "postgres";
import { TaskSubmissionSchema } from "../../gen/sluice/v1/task_pb.js";
import { appendHookSubtasks } from "../store/hook-subtasks.js";
import { addJobFile, addPendingUpload, blobExists, readJobFile, storeHookStatus } from "../store/job-hook.js";
import { parseIdentifier } from "../validation.js";
import type { AttemptKeys } from "./attempt-keys.js";
import { UPLOAD_URL_TTL_MS, type JobFiles } from "./job-files.js";
import { type HookCaller, HookError, authenticateHookCall } from "./job-hook-auth.js";
import { hookPaths, hookStates } from "./hook-paths.js";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

/** Where JOB_HOOK points, under the server's public URL. */
export const JOB_HOOK_PATH = "/job-hook";
/** Where upload and download URLs point. */
export const JOB_FILES_PATH = "/job-files";

const MAX_JSON_BODY = 1024 * 1024;
/** Subtasks one attempt may post. */
const MAX_HOOK_SUBTASKS = 10_000;

export interface JobHookOptions {
  sql: Sql;
  keys: AttemptKeys;
  files: JobFiles;
  /** The largest upload accepted, in bytes. */
  maxFileBytes: number;
  onError(e: unknown): void;
}

/** Whether a request is for the job hook or its file URLs. */
export function isJobHookPath(url: string | undefined): boolean {
  return url !== undefined && (url.startsWith(`${JOB_HOOK_PATH}/`) || url.startsWith(`${JOB_FILES_PATH}/`));
}

/**
 * The job hook (docs/process-tasks.md): what a process task calls with its
 * attempt's X-Job-* headers, and the URLs it sends and fetches bytes at.
 */
export function jobHookHandler(o: JobHookOptions): (req: Request, res: Response) => void {
  return (req, res) => {
    handle(o, req, res).then(
      (answer) => send(res, 200, answer),
      (e) => {
        if (e instanceof HookError) return send(res, e.status, { error: e.message });
        o.onError(e);
        send(res, 500, { error: "the server failed to handle this call; try again" });
      },
    );
  };
}

function send(res: Response, status: number, body: unknown): void {
  if (body instanceof Streamed) return;
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  (res as ServerResponse).writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** The answer was streamed already. */
class Streamed {}

async function handle(o: JobHookOptions, req: Request, res: Response): Promise<unknown> {
  // The path as sent: URL parsing would resolve "..", which must be refused instead.
  const [path, query = ""] = (req.url ?? "/").split("?", 2);
  const segments = path.split("/").slice(1);
  const method = req.method ?? "GET";
  if (segments[0] === JOB_FILES_PATH.slice(1)) return files(o, req, res, method, segments.slice(1), new URLSearchParams(query));
  const route = segments.slice(1);
  const caller = await authenticateHookCall(o.sql, o.keys, req.headers as Record<string, string>);
  const [action, ...rest] = route;
  if (action === "status" && rest.length === 0) {
    expect(method, "POST", "status");
    const status = await readJson(req);
    if (!(await storeHookStatus(o.sql, caller.taskId, caller.lease, { status }))) throw ended(caller);
    return { stored: true };
  }
  if (action === "output" && rest.length === 0) {
    expect(method, "POST", "output");
    const body = (await readJson(req)) as { stdout?: unknown; stderr?: unknown } | null;
    const stdout = typeof body?.stdout === "string" ? body.stdout : "";
    const stderr = typeof body?.stderr === "string" ? body.stderr : "";
    if (!(await storeHookStatus(o.sql, caller.taskId, caller.lease, { stdout: clean(stdout), stderr: clean(stderr) }))) throw ended(caller);
    return { stored: true };
  }
  if (action === "upload" && rest.length === 3) {
    expect(method, "PUT", "upload");
    return announceUpload(o, caller, fileName(rest), await readJson(req));
  }
  if (action === "download" && rest.length === 4) {
    expect(method, "GET", "download");
    const name = fileName(rest.slice(0, 3));
    const index = segment(rest[3], "index");
    if (!/^\d{1,9}$/.test(index)) throw new HookError(400, `index must be a number from 0, got ${JSON.stringify(index)}`);
    const file = await readJobFile(o.sql, name.store, name.uuid, name.property, Number(index));
    if (!file) throw new HookError(404, `no file ${name.store}/${name.uuid}/${name.property}/${index}: upload it first (PUT {JOB_HOOK}/upload/...)`);
    return {
      Map: { hash: file.hash, size: file.size, metadata: file.metadata, ...name, index: Number(index), createdAt: file.createdAt.toISOString() },
      Location: await o.files.downloadUrl(file.hash),
    };
  }
  if (action === "paths" && rest.length === 0) {
    expect(method, "GET", "paths");
    return hookPaths(o.sql, caller, new URLSearchParams(query));
  }
  if (action === "states" && rest.length === 0) {
    expect(method, "POST", "states");
    return hookStates(o.sql, caller, await readJson(req));
  }
  if (action === "subtasks" && rest.length === 0) {
    expect(method, "POST", "subtasks");
    return postSubtasks(o, caller, await readJson(req));
  }
  throw new HookError(404, `no job hook call ${method} /${route.join("/")}: use POST /status, PUT /upload/STORE/UUID/PROPERTY, GET /download/STORE/UUID/PROPERTY/INDEX, POST /subtasks, GET /paths or POST /states`);
}

async function files(o: JobHookOptions, req: Request, res: Response, method: string, path: string[], query: URLSearchParams): Promise<unknown> {
  if (path[0] === "uploads" && path.length === 2) {
    expect(method, "PUT", "an upload URL");
    const { index } = await o.files.receive(path[1], req as AsyncIterable<Buffer>, o.maxFileBytes);
    return { done: true, index };
  }
  if (path[0] === "blobs" && path.length === 2) {
    expect(method, "GET", "a download URL");
    const { size, stream } = await o.files.open(path[1], query);
    (res as ServerResponse).writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
    stream.pipe(res as ServerResponse);
    return new Streamed();
  }
  throw new HookError(404, "no such job file URL: use the URLs the job hook answers with");
}

function expect(method: string, wanted: string, what: string): void {
  if (method !== wanted) throw new HookError(405, `${what} takes ${wanted}, not ${method}`);
}

function ended(caller: HookCaller): HookError {
  return new HookError(401, `attempt ${caller.taskId}.${caller.lease} has ended`);
}

/** A path segment, decoded and checked: no "..", no separators. */
function segment(raw: string, what: string): string {
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    throw new HookError(400, `${what} ${JSON.stringify(raw)} is not valid percent-encoding`);
  }
  if (value.length === 0 || value.length > 200 || value.includes("..") || /[/\\\0-\x1f]/.test(value)) {
    throw new HookError(400, `${what} ${JSON.stringify(value)} is invalid: use 1 to 200 characters without "..", "/", "\\" or control characters`);
  }
  return value;
}

function fileName(parts: string[]): { store: string; uuid: string; property: string } {
  return { store: segment(parts[0], "store"), uuid: segment(parts[1], "uuid"), property: segment(parts[2], "property") };
}

async function announceUpload(o: JobHookOptions, caller: HookCaller, name: { store: string; uuid: string; property: string }, body: unknown): Promise<unknown> {
  const b = body as { hash?: unknown; challenge?: unknown; metadata?: unknown } | null;
  const md5 = /^[0-9a-f]{32}$/;
  if (typeof b?.hash !== "string" || !md5.test(b.hash.toLowerCase())) throw new HookError(400, "hash must be the MD5 of the content, 32 hex digits");
  if (typeof b.challenge !== "string" || !md5.test(b.challenge.toLowerCase())) {
    throw new HookError(400, 'challenge must be the MD5 of "WEBDA" followed by the content, 32 hex digits');
  }
  const metadata = b.metadata ?? {};
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) throw new HookError(400, "metadata must be a JSON object");
  const hash = b.hash.toLowerCase();
  if (await blobExists(o.sql, hash)) {
    // Known content: named again, no bytes sent.
    const index = await addJobFile(o.sql, name, hash, metadata, caller);
    return { done: true, index };
  }
  const id = randomUUID();
  await addPendingUpload(o.sql, { id, taskId: caller.taskId, lease: caller.lease, ...name, hash, challenge: b.challenge.toLowerCase(), metadata }, UPLOAD_URL_TTL_MS);
  return { done: false, method: "PUT", url: o.files.uploadUrl(id) };
}

async function postSubtasks(o: JobHookOptions, caller: HookCaller, body: unknown): Promise<unknown> {
  const tasks = (body as { tasks?: unknown } | null)?.tasks;
  if (!Array.isArray(tasks) || tasks.length === 0) throw new HookError(400, 'send {"tasks": [...]}: subtasks as TaskSubmission JSON, e.g. {"identifier": {"name": "Resize", "version": "v1.0"}, "inputJson": {...}}');
  if (tasks.length > MAX_HOOK_SUBTASKS) throw new HookError(400, `${tasks.length} subtasks in one call; send at most ${MAX_HOOK_SUBTASKS}`);
  const submissions = tasks.map((t, i) => {
    try {
      const s = fromJson(TaskSubmissionSchema, t, { ignoreUnknownFields: false });
      parseIdentifier(s.identifier?.name ?? "", s.identifier?.version ?? "", `tasks[${i}].identifier`);
      if (s.input.length === 0 && s.inputJson === undefined) throw new Error("set inputJson (a JSON object) or input");
      return toJson(TaskSubmissionSchema, s);
    } catch (e) {
      throw new HookError(400, `tasks[${i}]: ${(e as Error).message}`);
    }
  });
  const first = await appendHookSubtasks(o.sql, caller.taskId, caller.lease, submissions, MAX_HOOK_SUBTASKS);
  if (first === "ended") throw ended(caller);
  if (first === "too-many") throw new HookError(400, `an attempt may post at most ${MAX_HOOK_SUBTASKS} subtasks`);
  return { indexes: submissions.map((_, i) => first + i) };
}

/** Text PostgreSQL can store (no NUL). */
function clean(text: string): string {
  return text.replace(/\0/g, "\uFFFD");
}

async function readJson(req: Request): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BODY) throw new HookError(413, `the body is larger than ${MAX_JSON_BODY} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return null;
  // PostgreSQL's jsonb cannot hold a NUL character.
  if (text.includes("\\u0000")) throw new HookError(400, "the body holds a NUL character (\\u0000), which cannot be stored: remove it");
  try {
    return JSON.parse(text);
  } catch {
    throw new HookError(400, "the body is not JSON");
  }
}
