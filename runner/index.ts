export { Client, type ClientOptions, DEFAULT_URL } from "./sdk/client.js";
export {
  Task,
  type ExecutionContext,
  type SubtaskHandle,
  type SubtaskOptions,
  type TaskClass,
  type TaskIdentifier,
  type TaskLogger,
  type ProgressTracker,
  type RetryBackoff,
  MAX_TASK_INPUT_BYTES,
} from "./sdk/task.js";
export { JobClient, type Job, type JobDetails, type JobFilter, type JobStateName, type ObjectWrite, type SubmitOptions, type TaskInfo, type TaskStateName } from "./sdk/jobs.js";
export { ClusterClient, type Cluster } from "./sdk/clusters.js";
export {
  ObservabilityClient,
  type JobProgress,
  type JobUpdate,
  type LogLevelName,
  type LogLine,
  type ProgressBar,
  type RunnerInfo,
  type Unrunnable,
} from "./sdk/observability.js";
export { TokenClient, type TokenInfo, type TokenScopeName } from "./sdk/tokens.js";
export {
  RecurrentTaskClient,
  type CronTaskOptions,
  type CronTrigger,
  type RecurrentTaskInfo,
  type StorageEventTaskOptions,
  type StorageLocationSpec,
} from "./sdk/recurrent.js";
export { StorageEventTask, StorageLocation, type StorageTrigger, type StorageEventTypeName, type StorageTypeName } from "./sdk/storage.js";
export { WriteObject } from "./sdk/builtins.js";
export { FileTask } from "./sdk/file-task.js";
export { PATH_STATE_NAMES, type PathObject, type PathStateName, type PathStatus, type TaskPaths } from "./sdk/paths.js";
export { QueueName, formatQueueName, parseQueueName } from "./sdk/queue-name.js";
export {
  FileClient,
  type FileJob,
  type FilePayload,
  type FileStepInfo,
  type FileTaskInfo,
  type FileWorkflowJob,
  type FileWorkflowOptions,
  type PathQuery,
  type ReportedPath,
} from "./sdk/files.js";
export type { ProcessTasks, ProcessTaskSpec } from "./worker/process-task.js";
export type { KubernetesOptions } from "./worker/kubernetes-jobs.js";
export { TaskRunner, TaskTimeoutError, type RunnerLogger, type RunnerOptions } from "./worker/task-runner.js";
export { shutdownTracing } from "./wire/tracing.js";
export { Code, ConnectError } from "@connectrpc/connect";
export {
  AmazonS3Cache,
  type AmazonS3CacheOptions,
  type CacheBackend,
  CacheKeyNotFoundError,
  GoogleStorageCache,
  type GoogleStorageCacheOptions,
  InMemoryCache,
  JobCache,
  LocalFileSystemCache,
  type LocalFileSystemCacheOptions,
  type RetentionOptions,
} from "./sdk/cache/index.js";
