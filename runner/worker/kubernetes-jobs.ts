import { setTimeout as wait } from "node:timers/promises";
import type { BatchV1Api, CoreV1Api, KubeConfig, V1Job, Watch } from "@kubernetes/client-node";
import { importOptional } from "../sdk/optional.js";
import type { JobHookAccess, ProcessOutcome, ProcessTaskSpec } from "./process-types.js";

/** Where and how a runner creates Kubernetes Jobs for its process tasks. */
export interface KubernetesOptions {
  /**
   * The cluster to use (a KubeConfig of `@kubernetes/client-node`). Default:
   * the usual kubeconfig (KUBECONFIG, ~/.kube/config), or the pod's service
   * account when the runner runs in the cluster.
   */
  kubeConfig?: KubeConfig;
  /** The namespace of the Jobs (default: the kubeconfig context's, else "default"). */
  namespace?: string;
  /** The service account the Jobs' pods run as. */
  serviceAccountName?: string;
  /** The image of process tasks that name none in their spec. */
  image?: string;
  /** How long Kubernetes keeps a finished Job (default 3600 s). */
  ttlSecondsAfterFinished?: number;
  /** More labels for every Job and pod. */
  labels?: Readonly<Record<string, string>>;
}

/** Labels of the Jobs a runner creates: how it finds its own again after a restart. */
export const LABELS = {
  managedBy: "app.kubernetes.io/managed-by",
  runner: "sluice.dev/runner",
  job: "sluice.dev/job",
  task: "sluice.dev/task",
  attempt: "sluice.dev/attempt",
} as const;
const ANNOTATION_IDENTIFIER = "sluice.dev/task-identifier";

/** A task attempt as the runner holds it, for its Job. */
export interface KubernetesAttempt {
  taskId: string;
  jobId: string;
  lease: number;
  name: string;
  version: string;
  input: Uint8Array;
  hook: JobHookAccess | undefined;
}

/** The Job name of an attempt: the same for the same attempt, so a second create fails with AlreadyExists. */
export function jobNameOf(taskId: string, lease: number): string {
  return `sluice-task-${taskId}-${lease}`;
}

interface Api {
  batch: BatchV1Api;
  core: CoreV1Api;
  watch: Watch;
  namespace: string;
}

const decoder = new TextDecoder();

/** The HTTP status of an error of the Kubernetes client, if it has one. */
function statusOf(e: unknown): number | undefined {
  const err = e as { code?: unknown; statusCode?: unknown };
  return typeof err.code === "number" ? err.code : typeof err.statusCode === "number" ? err.statusCode : undefined;
}

/** What a Job's status says of its end, or null while it runs. */
function endOf(job: V1Job): { succeeded: boolean; message: string } | null {
  const conditions = job.status?.conditions ?? [];
  const failed = conditions.find((c) => (c.type === "Failed" || c.type === "FailureTarget") && c.status === "True");
  if (failed) return { succeeded: false, message: [failed.reason, failed.message].filter(Boolean).join(": ") || "the Job failed" };
  if (conditions.some((c) => (c.type === "Complete" || c.type === "SuccessCriteriaMet") && c.status === "True")) return { succeeded: true, message: "" };
  if ((job.status?.succeeded ?? 0) > 0) return { succeeded: true, message: "" };
  if ((job.status?.failed ?? 0) > 0) return { succeeded: false, message: "its pod failed" };
  return null;
}

/**
 * Runs process tasks as Kubernetes Jobs (batch/v1), one per attempt: creates
 * it, watches it until it ends, and deletes it when the attempt is stopped.
 * The runner's lease extension keeps the task while the Job runs.
 */
export class KubernetesJobs {
  private api: Promise<Api> | null = null;

  constructor(
    private readonly options: KubernetesOptions,
    private readonly runnerId: string,
  ) {}

  private connect(): Promise<Api> {
    this.api ??= importOptional("@kubernetes/client-node", () => import("@kubernetes/client-node"), "Running process tasks as Kubernetes Jobs").then((k8s) => {
      let kc = this.options.kubeConfig;
      if (!kc) {
        kc = new k8s.KubeConfig();
        kc.loadFromDefault();
      }
      const context = kc.getContextObject(kc.getCurrentContext());
      return {
        batch: kc.makeApiClient(k8s.BatchV1Api),
        core: kc.makeApiClient(k8s.CoreV1Api),
        watch: new k8s.Watch(kc),
        namespace: this.options.namespace ?? context?.namespace ?? "default",
      };
    });
    return this.api;
  }

  /** The Job of an attempt, as created. */
  manifest(a: KubernetesAttempt, spec: ProcessTaskSpec & { command: readonly string[] }, namespace: string): V1Job {
    const image = spec.image ?? this.options.image;
    if (!image) throw new Error(`process task ${a.name}@${a.version} has no image: give one in its spec or in the runner's kubernetes options`);
    const labels = {
      ...this.options.labels,
      [LABELS.managedBy]: "sluice",
      [LABELS.runner]: this.runnerId,
      [LABELS.job]: a.jobId,
      [LABELS.task]: a.taskId,
      [LABELS.attempt]: String(a.lease),
    };
    const env: Record<string, string> = {
      ...spec.env,
      JOB_INPUT_JSON: decoder.decode(a.input),
      SLUICE_JOB_ID: a.jobId,
      SLUICE_TASK_ID: a.taskId,
      SLUICE_ATTEMPT: String(a.lease),
    };
    if (a.hook) Object.assign(env, { JOB_ID: a.hook.jobId, JOB_SECRET_KEY: a.hook.secretKey, JOB_HOOK: a.hook.url });
    return {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: jobNameOf(a.taskId, a.lease), namespace, labels, annotations: { [ANNOTATION_IDENTIFIER]: `${a.name}@${a.version}` } },
      spec: {
        // Sluice retries the task; Kubernetes runs each attempt once.
        backoffLimit: 0,
        ttlSecondsAfterFinished: this.options.ttlSecondsAfterFinished ?? 3600,
        activeDeadlineSeconds: spec.timeoutMs === undefined ? undefined : Math.ceil(spec.timeoutMs / 1000),
        template: {
          metadata: { labels },
          spec: {
            restartPolicy: "Never",
            serviceAccountName: this.options.serviceAccountName,
            containers: [
              {
                name: "task",
                image,
                command: [...spec.command],
                workingDir: spec.cwd,
                env: Object.entries(env).map(([name, value]) => ({ name, value })),
                resources: spec.resources,
              },
            ],
          },
        },
      },
    };
  }

  /**
   * Runs an attempt's Job to its end. A Job of that name already there (the
   * runner restarted while it ran) is adopted: watched, not created again.
   */
  async run(a: KubernetesAttempt, spec: ProcessTaskSpec & { command: readonly string[] }, signal: AbortSignal): Promise<ProcessOutcome & { log: string }> {
    const { batch, namespace } = await this.connect();
    const name = jobNameOf(a.taskId, a.lease);
    try {
      await batch.createNamespacedJob({ namespace, body: this.manifest(a, spec, namespace) });
    } catch (e) {
      if (statusOf(e) !== 409) throw e;
    }
    const deadline = new AbortController();
    const timer = spec.timeoutMs === undefined ? undefined : setTimeout(() => deadline.abort(), spec.timeoutMs);
    const stop = AbortSignal.any([signal, deadline.signal]);
    try {
      for (;;) {
        if (stop.aborted) {
          await this.delete(name);
          const stopped = signal.aborted ? String((signal.reason as Error | undefined)?.message ?? "stopped") : null;
          return { code: null, signal: null, timedOut: !signal.aborted, stopped, log: "" };
        }
        let job: V1Job;
        try {
          job = await batch.readNamespacedJob({ name, namespace });
        } catch (e) {
          if (statusOf(e) === 404) return { code: null, signal: null, timedOut: false, stopped: null, message: `Kubernetes Job ${name} was deleted before it ended`, log: "" };
          throw e;
        }
        const end = endOf(job);
        if (end) {
          const log = await this.logTail(name);
          const tail = log.trimEnd().split("\n").slice(-5).join("\n");
          const message = end.succeeded ? undefined : `Kubernetes Job ${name} failed (${end.message})${tail ? `: ${tail}` : ""}`;
          return { code: end.succeeded ? 0 : 1, signal: null, timedOut: false, stopped: null, message, log };
        }
        await this.watchChange(name, job.metadata?.resourceVersion, stop);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves at the first change of the Job (or when the watch ends, or on abort). */
  private async watchChange(name: string, resourceVersion: string | undefined, signal: AbortSignal): Promise<void> {
    const { watch, namespace } = await this.connect();
    let failed = false;
    await new Promise<void>((resolve) => {
      let controller: AbortController | undefined;
      const done = () => {
        signal.removeEventListener("abort", done);
        controller?.abort();
        resolve();
      };
      signal.addEventListener("abort", done, { once: true });
      watch
        .watch(
          `/apis/batch/v1/namespaces/${namespace}/jobs`,
          { fieldSelector: `metadata.name=${name}`, resourceVersion },
          () => done(),
          (err: unknown) => {
            failed = err !== null && err !== undefined;
            done();
          },
        )
        .then((c) => {
          controller = c;
          if (signal.aborted) c.abort();
        }, done);
    });
    // A watch that broke is opened again, not at once.
    if (failed) await wait(1_000, undefined, { signal }).catch(() => {});
  }

  /** The end of the log of the Job's (last) pod: its standard output and error together; "" when it cannot be read. */
  private async logTail(job: string): Promise<string> {
    const { core, namespace } = await this.connect();
    try {
      const pods = await core.listNamespacedPod({ namespace, labelSelector: `job-name=${job}` });
      const pod = pods.items.at(-1)?.metadata?.name;
      if (!pod) return "";
      const log = await core.readNamespacedPodLog({ name: pod, namespace, container: "task", tailLines: 200 });
      return typeof log === "string" ? log.slice(-8 * 1024) : "";
    } catch {
      // Logs are a courtesy: the pod may be gone, or the runner's account may not read logs.
      return "";
    }
  }

  private async delete(name: string): Promise<void> {
    const { batch, namespace } = await this.connect();
    try {
      await batch.deleteNamespacedJob({ name, namespace, propagationPolicy: "Background" });
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
  }

  /**
   * The attempts whose Jobs this runner created and that still exist: after a
   * restart, the runner holds them again and adopts their Jobs.
   */
  async adoptable(): Promise<KubernetesAttempt[]> {
    const { batch, namespace } = await this.connect();
    const list = await batch.listNamespacedJob({ namespace, labelSelector: `${LABELS.managedBy}=sluice,${LABELS.runner}=${this.runnerId}` });
    const out: KubernetesAttempt[] = [];
    for (const job of list.items) {
      const labels = job.metadata?.labels ?? {};
      const [name, version] = (job.metadata?.annotations?.[ANNOTATION_IDENTIFIER] ?? "").split("@");
      const env = new Map((job.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value ?? ""]));
      const lease = Number(labels[LABELS.attempt]);
      // A Job whose labels or annotation were edited into another shape is not adopted.
      if (!name || !/^v\d+\.\d+$/.test(version ?? "") || !/^[1-9]\d*$/.test(labels[LABELS.task] ?? "") || !Number.isInteger(lease)) continue;
      const hook = env.has("JOB_SECRET_KEY") ? { jobId: env.get("JOB_ID")!, secretKey: env.get("JOB_SECRET_KEY")!, url: env.get("JOB_HOOK")! } : undefined;
      out.push({ taskId: labels[LABELS.task], jobId: labels[LABELS.job], lease, name, version, input: new TextEncoder().encode(env.get("JOB_INPUT_JSON") ?? "{}"), hook });
    }
    return out;
  }
}
