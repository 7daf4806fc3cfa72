export { Client, type ClientOptions, DEFAULT_URL } from "./client.js";
export {
  Task,
  type ExecutionContext,
  type SubtaskHandle,
  type SubtaskOptions,
  type TaskClass,
  type TaskIdentifier,
  MAX_TASK_INPUT_BYTES,
} from "./task.js";
export { JobClient, type Job, type JobDetails, type JobFilter, type JobStateName, type ObjectWrite, type SubmitOptions, type TaskInfo, type TaskStateName } from "./jobs.js";
export { ClusterClient, type Cluster } from "./clusters.js";
export { TokenClient, type TokenInfo, type TokenScopeName } from "./tokens.js";
export {
  RecurrentTaskClient,
  type CronTaskOptions,
  type CronTrigger,
  type RecurrentTaskInfo,
  type StorageEventTaskOptions,
  type StorageLocationSpec,
} from "./recurrent.js";
export { StorageEventTask, StorageLocation, type StorageTrigger, type StorageEventTypeName, type StorageTypeName } from "./storage.js";
export { WriteObject } from "./builtins.js";
export { TaskRunner, type RunnerLogger, type RunnerOptions } from "./task-runner.js";
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
} from "./cache/index.js";
