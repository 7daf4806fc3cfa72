import { InvalidArgumentError } from "commander";
import { parseProcessKey, splitCommand } from "../worker/process-task.js";
import type { KubernetesOptions } from "../worker/kubernetes-jobs.js";
import type { ProcessTasks } from "../worker/process-task.js";

/**
 * One `--process 'NAME@vX.Y=COMMAND LINE'` of `sluice runner`, added to those
 * before it. The command line is split as a shell would, without a shell.
 */
export function collectProcess(raw: string, previous: Record<string, string[]> = {}): Record<string, string[]> {
  const eq = raw.indexOf("=");
  if (eq < 0) throw new InvalidArgumentError(`--process ${raw}: use NAME@vX.Y=COMMAND, e.g. 'resize@v1.0=python3 resize.py'`);
  const key = raw.slice(0, eq).trim();
  try {
    parseProcessKey(key);
    if (key in previous) throw new TypeError(`process task ${key} is given twice`);
    return { ...previous, [key]: splitCommand(raw.slice(eq + 1)) };
  } catch (e) {
    throw new InvalidArgumentError(`--process ${raw}: ${(e as Error).message}`);
  }
}

/** The `--kube-*` options of `sluice runner`, when `--kubernetes` is given. */
export function kubernetesOf(opts: { kubernetes?: boolean; kubeNamespace?: string; kubeImage?: string; kubeServiceAccount?: string }): KubernetesOptions | undefined {
  if (!opts.kubernetes) {
    if (opts.kubeNamespace || opts.kubeImage || opts.kubeServiceAccount) throw new InvalidArgumentError("--kube-namespace, --kube-image and --kube-service-account go with --kubernetes");
    return undefined;
  }
  return { namespace: opts.kubeNamespace, image: opts.kubeImage, serviceAccountName: opts.kubeServiceAccount };
}

/** The process tasks of `sluice runner`: its `--process` options, each with `--process-timeout`. */
export function processesOf(opts: { process?: Record<string, string[]>; processTimeout?: number }): ProcessTasks {
  const timeoutMs = opts.processTimeout === undefined ? undefined : opts.processTimeout * 1000;
  if (timeoutMs !== undefined && (timeoutMs <= 0 || !opts.process)) throw new InvalidArgumentError("--process-timeout takes seconds above 0, and goes with --process");
  return Object.fromEntries(Object.entries(opts.process ?? {}).map(([key, command]) => [key, { command, timeoutMs }]));
}
