export { type CacheBackend, CacheKeyNotFoundError, JobCache, type StreamSource, checkKey } from "./cache.js";
export { InMemoryCache } from "./memory.js";
export { LocalFileSystemCache, type LocalFileSystemCacheOptions } from "./file-system.js";
export { AmazonS3Cache, type AmazonS3CacheOptions } from "./s3.js";
export { GoogleStorageCache, type GoogleStorageCacheOptions } from "./gcs.js";
export type { RetentionOptions } from "./retention.js";
