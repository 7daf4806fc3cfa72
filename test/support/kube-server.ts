import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig, type V1Job } from "@kubernetes/client-node";

interface Watcher {
  namespace: string;
  name?: string;
  labels: [string, string][];
  res: ServerResponse;
}

interface Stored {
  job: V1Job;
  process?: ChildProcess;
  /** The Job's pod: its name, labels and log (standard output and error together). */
  pod: { name: string; labels: Record<string, string>; log: string };
}

/**
 * A Kubernetes API server for batch/v1 Jobs, as much of the REST protocol as
 * the runner uses: create, get, list (label and field selectors), watch
 * (newline-delimited events) and delete, with Status errors, and the pods'
 * list and log that the runner reads when a Job ends. Each Job's
 * container command runs as a local process with the container's environment,
 * so that its job hook calls reach the Sluice server for real; its exit sets
 * the Job's status as the Job controller would.
 */
export class KubeTestServer {
  private server: Server | null = null;
  private readonly jobs = new Map<string, Stored>();
  private readonly watchers = new Set<Watcher>();
  private version = 1;
  url = "";
  /** Every create request by Job name, with its answer's status code. */
  readonly creates: { name: string; status: number }[] = [];
  /** Names of the Jobs deleted. */
  readonly deleted: string[] = [];

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: Error) => this.status(res, 500, "InternalError", e.message));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.jobs.values()) this.kill(s);
    for (const w of this.watchers) w.res.end();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** A KubeConfig of the client library for this server. */
  kubeConfig(namespace = "default"): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeConfigYaml(namespace));
    return kc;
  }

  /** A kubeconfig file for this server, for a runner in another process (KUBECONFIG). */
  writeKubeConfig(file: string, namespace = "default"): string {
    writeFileSync(file, this.kubeConfigYaml(namespace));
    return file;
  }

  private kubeConfigYaml(namespace: string): string {
    return JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "test", cluster: { server: this.url, "insecure-skip-tls-verify": true } }],
      users: [{ name: "runner", user: { token: "test-token" } }],
      contexts: [{ name: "test", context: { cluster: "test", user: "runner", namespace } }],
      "current-context": "test",
    });
  }

  /** A Job as stored now. */
  job(namespace: string, name: string): V1Job | undefined {
    return this.jobs.get(`${namespace}/${name}`)?.job;
  }

  allJobs(): V1Job[] {
    return [...this.jobs.values()].map((s) => s.job);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.authorization !== "Bearer test-token") return this.status(res, 401, "Unauthorized", "Unauthorized");
    const url = new URL(req.url ?? "/", this.url);
    const pods = /^\/api\/v1\/namespaces\/([a-z0-9-]+)\/pods(?:\/([a-z0-9.-]+)\/log)?$/.exec(url.pathname);
    if (pods && req.method === "GET") return this.pods(res, pods[1], pods[2], url.searchParams);
    const m = /^\/apis\/batch\/v1\/namespaces\/([a-z0-9-]+)\/jobs(?:\/([a-z0-9.-]+))?$/.exec(url.pathname);
    if (!m) return this.status(res, 404, "NotFound", `the server could not find the requested resource ${url.pathname}`);
    const [, namespace, name] = m;
    if (req.method === "POST" && !name) return this.create(namespace, JSON.parse(await body(req)) as V1Job, res);
    if (req.method === "GET" && name) {
      const s = this.jobs.get(`${namespace}/${name}`);
      return s ? json(res, 200, s.job) : this.status(res, 404, "NotFound", `jobs.batch "${name}" not found`);
    }
    if (req.method === "GET") {
      const labels = (url.searchParams.get("labelSelector") ?? "").split(",").filter(Boolean).map((p) => p.split("=") as [string, string]);
      const field = url.searchParams.get("fieldSelector") ?? "";
      const byName = /^metadata\.name=(.+)$/.exec(field)?.[1];
      if (url.searchParams.get("watch") === "true") return this.watch({ namespace, name: byName, labels, res }, Number(url.searchParams.get("resourceVersion") ?? 0));
      const items = this.allJobs().filter((j) => matches(j, namespace, byName, labels));
      return json(res, 200, { apiVersion: "batch/v1", kind: "JobList", metadata: { resourceVersion: String(this.version) }, items });
    }
    if (req.method === "DELETE" && name) {
      const s = this.jobs.get(`${namespace}/${name}`);
      if (!s) return this.status(res, 404, "NotFound", `jobs.batch "${name}" not found`);
      this.kill(s);
      this.jobs.delete(`${namespace}/${name}`);
      this.deleted.push(name);
      s.job.metadata!.resourceVersion = String(++this.version);
      this.emit("DELETED", s.job);
      return json(res, 200, { apiVersion: "v1", kind: "Status", status: "Success", details: { name, group: "batch", kind: "jobs", uid: s.job.metadata!.uid } });
    }
    return this.status(res, 405, "MethodNotAllowed", `${req.method} is not allowed here`);
  }

  private create(namespace: string, job: V1Job, res: ServerResponse): void {
    const name = job.metadata?.name ?? "";
    if (job.apiVersion !== "batch/v1" || job.kind !== "Job" || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
      this.creates.push({ name, status: 422 });
      return this.status(res, 422, "Invalid", `Job.batch "${name}" is invalid`);
    }
    if (this.jobs.has(`${namespace}/${name}`)) {
      this.creates.push({ name, status: 409 });
      return this.status(res, 409, "AlreadyExists", `jobs.batch "${name}" already exists`);
    }
    this.creates.push({ name, status: 201 });
    job.metadata = { ...job.metadata, namespace, uid: randomUUID(), resourceVersion: String(++this.version), creationTimestamp: new Date() };
    job.status = { active: 1, startTime: new Date() };
    const podLabels = { ...job.spec?.template.metadata?.labels, "job-name": name, "batch.kubernetes.io/job-name": name };
    const stored: Stored = { job, pod: { name: `${name}-${randomUUID().slice(0, 5)}`, labels: podLabels, log: "" } };
    this.jobs.set(`${namespace}/${name}`, stored);
    this.emit("ADDED", job);
    this.run(stored);
    json(res, 201, job);
  }

  /** Runs the Job's container command here, and sets its status when it exits. */
  private run(s: Stored): void {
    const c = s.job.spec!.template.spec!.containers[0];
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
    for (const e of c.env ?? []) env[e.name] = e.value ?? "";
    const [program, ...args] = c.command ?? [];
    const child = spawn(program, args, { env, cwd: c.workingDir, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    s.process = child;
    child.stdout!.on("data", (d: Buffer) => (s.pod.log += d));
    child.stderr!.on("data", (d: Buffer) => (s.pod.log += d));
    const finish = (ok: boolean, message: string) => {
      if (s.process !== child) return;
      s.process = undefined;
      const now = new Date();
      s.job.status = ok
        ? { succeeded: 1, startTime: s.job.status?.startTime, completionTime: now, conditions: [{ type: "Complete", status: "True", lastTransitionTime: now }] }
        : { failed: 1, startTime: s.job.status?.startTime, conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", message, lastTransitionTime: now }] };
      s.job.metadata!.resourceVersion = String(++this.version);
      this.emit("MODIFIED", s.job);
    };
    child.once("error", (e) => finish(false, e.message));
    // "close": after its output was read, so that the log is whole when the status says it ended.
    child.once("close", (code) => finish(code === 0, "Job has reached the specified backoff limit"));
  }

  private kill(s: Stored): void {
    const pid = s.process?.pid;
    s.process = undefined;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }

  private pods(res: ServerResponse, namespace: string, logOf: string | undefined, query: URLSearchParams): void {
    const all = [...this.jobs.values()].filter((s) => s.job.metadata!.namespace === namespace);
    if (logOf) {
      const s = all.find((x) => x.pod.name === logOf);
      if (!s) return this.status(res, 404, "NotFound", `pods "${logOf}" not found`);
      const lines = s.pod.log.split(/(?<=\n)/);
      const tail = Number(query.get("tailLines") ?? lines.length);
      const text = lines.slice(-tail).join("");
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
      return void res.end(text);
    }
    const labels = (query.get("labelSelector") ?? "").split(",").filter(Boolean).map((p) => p.split("=") as [string, string]);
    const items = all
      .filter((s) => labels.every(([k, v]) => s.pod.labels[k] === v))
      .map((s) => ({ apiVersion: "v1", kind: "Pod", metadata: { name: s.pod.name, namespace, labels: s.pod.labels }, spec: { containers: [{ name: "task", image: "x" }] } }));
    json(res, 200, { apiVersion: "v1", kind: "PodList", metadata: { resourceVersion: String(this.version) }, items });
  }

  private watch(w: Watcher, since: number): void {
    w.res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    this.watchers.add(w);
    w.res.once("close", () => this.watchers.delete(w));
    for (const job of this.allJobs()) {
      if (matches(job, w.namespace, w.name, w.labels) && Number(job.metadata!.resourceVersion) > since) w.res.write(`${JSON.stringify({ type: "MODIFIED", object: job })}\n`);
    }
  }

  private emit(type: string, job: V1Job): void {
    for (const w of this.watchers) {
      if (matches(job, w.namespace, w.name, w.labels)) w.res.write(`${JSON.stringify({ type, object: job })}\n`);
    }
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    json(res, code, { apiVersion: "v1", kind: "Status", metadata: {}, status: "Failure", message, reason, code });
  }
}

function matches(job: V1Job, namespace: string, name: string | undefined, labels: [string, string][]): boolean {
  const md = job.metadata!;
  return md.namespace === namespace && (name === undefined || md.name === name) && labels.every(([k, v]) => md.labels?.[k] === v);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function body(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text;
}
