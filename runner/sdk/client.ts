import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { type Transport, createClient } from "@connectrpc/connect";
import { Http2SessionManager, compressionGzip, createConnectTransport } from "@connectrpc/connect-node";
import { ClusterService } from "../../gen/sluice/v1/cluster_service_pb.js";
import { FileService } from "../../gen/sluice/v1/file_service_pb.js";
import { JobService } from "../../gen/sluice/v1/job_service_pb.js";
import { RecurrentTaskService } from "../../gen/sluice/v1/recurrent_task_service_pb.js";
import { RunnerService } from "../../gen/sluice/v1/runner_service_pb.js";
import { StorageService } from "../../gen/sluice/v1/storage_service_pb.js";
import { TokenService } from "../../gen/sluice/v1/token_service_pb.js";
import { TokenClient } from "./tokens.js";
import { ObservabilityService } from "../../gen/sluice/v1/observability_service_pb.js";
import { ObservabilityClient } from "./observability.js";
import { ClusterClient } from "./clusters.js";
import { JobClient } from "./jobs.js";
import { FileClient } from "./files.js";
import { RecurrentTaskClient } from "./recurrent.js";
import { retryReads } from "./retry.js";
import type { Interceptor } from "@connectrpc/connect";

/** Sends the token with every call, when there is one. */
function bearer(token: string | undefined): Interceptor[] {
  if (!token) return [];
  const value = `Bearer ${token.trim()}`;
  return [
    (next) => (req) => {
      req.header.set("authorization", value);
      return next(req);
    },
  ];
}
import { type RunnerOptions, TaskRunner } from "../worker/task-runner.js";

/** The server a client talks to when neither `url` nor `SLUICE_URL` names one. */
export const DEFAULT_URL = "http://127.0.0.1:8080";

export interface ClientOptions {
  /** The server's URL; `SLUICE_URL`, else http://127.0.0.1:8080. */
  url?: string;
  /**
   * Compress messages with gzip both ways (default false). Worth it only on a
   * slow link: on a LAN, gzip costs the server and the runner more CPU than
   * the bytes it saves take to send.
   */
  compression?: boolean;
  /**
   * The bearer token to present (a server that listens beyond loopback needs
   * one); `SLUICE_TOKEN` when omitted.
   */
  token?: string;
  /**
   * For an https:// server whose certificate a private CA signed: that CA's
   * certificates (PEM); the file `SLUICE_CA` names when omitted.
   */
  ca?: string | Buffer;
  /**
   * A client certificate and key (PEM) for a server that asks for one; the
   * files `SLUICE_CLIENT_CERT` and `SLUICE_CLIENT_KEY` name when omitted.
   */
  clientCertificate?: { cert: string | Buffer; key: string | Buffer };
}

/** TLS options for an https:// server, from the client options or the environment. */
function tlsOptions(options: ClientOptions): { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer } {
  const read = (file: string | undefined, what: string) => {
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (e) {
      throw new TypeError(`${what} names ${file}, which cannot be read: ${(e as Error).message}`);
    }
  };
  const ca = options.ca ?? read(process.env.SLUICE_CA, "SLUICE_CA");
  const cert = options.clientCertificate?.cert ?? read(process.env.SLUICE_CLIENT_CERT, "SLUICE_CLIENT_CERT");
  const key = options.clientCertificate?.key ?? read(process.env.SLUICE_CLIENT_KEY, "SLUICE_CLIENT_KEY");
  return { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
}

/**
 * The entry point of the SDK: one HTTP/2 connection to a Sluice server, shared
 * by the job and cluster clients and the task runners made from it.
 *
 * ```ts
 * const client = new Client({ url: "http://127.0.0.1:8080" });
 * await client.jobs().submit("hello", new Hello({ who: "world" }));
 * await client.runner("default", { tasks: [Hello] }).runAll();
 * ```
 */
export class Client {
  readonly url: string;
  readonly transport: Transport;
  private readonly sessions: Http2SessionManager;
  private jobClient: JobClient | undefined;

  constructor(options: ClientOptions = {}) {
    this.url = (options.url ?? process.env.SLUICE_URL ?? DEFAULT_URL).replace(/\/+$/, "");
    let parsed: URL;
    try {
      parsed = new URL(this.url);
    } catch {
      throw new TypeError(`server URL ${JSON.stringify(this.url)} is not a URL: use e.g. http://127.0.0.1:8080`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new TypeError(`server URL ${this.url} must start with http:// or https://`);
    }
    // Pings find a dead connection within a minute even when no call is made,
    // so a runner waiting on its work stream notices a server that went away.
    this.sessions = new Http2SessionManager(
      this.url,
      { pingIntervalMs: 20_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 60_000 },
      // Without Nagle's algorithm: a small result batch leaves at once instead
      // of waiting up to 40 ms for the server's delayed ACK.
      parsed.protocol === "http:"
        ? { createConnection: () => connect({ host: parsed.hostname.replace(/^\[|\]$/g, ""), port: Number(parsed.port || 80), noDelay: true }) }
        : tlsOptions(options),
    );
    this.transport = createConnectTransport({
      baseUrl: this.url,
      httpVersion: "2",
      useBinaryFormat: true,
      sessionManager: this.sessions,
      // By default the transport accepts gzip and brotli, and the server then
      // compresses every message over 1 KiB, such as each batch of leased tasks.
      acceptCompression: options.compression ? [compressionGzip] : [],
      sendCompression: options.compression ? compressionGzip : undefined,
      interceptors: [retryReads, ...bearer(options.token ?? process.env.SLUICE_TOKEN)],
    });
  }

  /**
   * Submits, reads, lists, cancels and retries jobs. One for the client, so
   * that submits made at once from anywhere in a program go together, in one
   * message on one stream, rather than a stream each.
   */
  jobs(): JobClient {
    this.jobClient ??= new JobClient(createClient(JobService, this.transport));
    return this.jobClient;
  }

  /** Creates, lists and deletes clusters. */
  clusters(): ClusterClient {
    return new ClusterClient(createClient(ClusterService, this.transport));
  }

  /** Cron tasks (and, soon, storage event tasks) that submit jobs by themselves. */
  recurrentTasks(): RecurrentTaskClient {
    return new RecurrentTaskClient(createClient(RecurrentTaskService, this.transport), createClient(StorageService, this.transport));
  }

  /** File workflows: submits them, and reads their paths and states in the seed's payload. */
  files(): FileClient {
    return new FileClient(createClient(FileService, this.transport));
  }

  /** Creates, lists and revokes bearer tokens (needs an admin token). */
  tokens(): TokenClient {
    return new TokenClient(createClient(TokenService, this.transport));
  }

  /** Task logs, job progress and the connected runners. */
  observability(): ObservabilityClient {
    return new ObservabilityClient(createClient(ObservabilityService, this.transport));
  }

  /** A task runner that executes the given tasks for a cluster ("default" when empty). */
  runner(cluster: string, options: RunnerOptions): TaskRunner {
    return new TaskRunner(createClient(RunnerService, this.transport), cluster || "default", options, createClient(FileService, this.transport));
  }

  /** Closes the connection; calls still in flight fail. */
  close(): void {
    this.sessions.abort();
  }
}
