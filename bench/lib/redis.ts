import { existsSync } from "node:fs";
import type { ConnectionOptions } from "bullmq";
import { Redis } from "ioredis";

/** The Redis the BullMQ runs use: `REDIS_URL`, else 127.0.0.1:6379. */
export function redisUrl(): string {
  return process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
}

/**
 * BullMQ's connection options for `url` (each Queue, Worker and FlowProducer
 * then opens and closes its own connections); workers need
 * `maxRetriesPerRequest: null` for their blocking commands.
 */
export function bullmqConnection(url = redisUrl()): ConnectionOptions {
  const u = new URL(url);
  return {
    host: u.hostname || "127.0.0.1",
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined,
    maxRetriesPerRequest: null,
  };
}

/**
 * A connection for the orchestrator's own commands (INFO, CONFIG, SCAN): no
 * reconnect loop, so that a missing Redis is found out in a second.
 */
export async function adminRedis(url = redisUrl()): Promise<Redis> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on("error", () => {});
  await r.connect();
  return r;
}

/** Undefined when Redis answers PING, else why not. */
export async function pingRedis(url = redisUrl()): Promise<string | undefined> {
  let r: Redis | undefined;
  try {
    r = await adminRedis(url);
    await r.ping();
    return undefined;
  } catch (e) {
    return (e as Error).message || String(e);
  } finally {
    r?.disconnect();
  }
}

/** Deletes the keys matching `pattern` (a SCAN pattern). */
export async function deleteKeys(r: Redis, pattern: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    if (keys.length > 0) await r.del(...keys);
    cursor = next;
  } while (cursor !== "0");
}

/** Redis's persistence settings. */
export interface RedisDurability {
  appendonly: string;
  appendfsync: string;
}

export async function redisDurability(r: Redis): Promise<RedisDurability> {
  const get = async (name: string) => ((await r.config("GET", name)) as string[])[1];
  return { appendonly: await get("appendonly"), appendfsync: await get("appendfsync") };
}

/** Undo functions of Redis settings changed and not yet restored (run on Ctrl-C too). */
export const pendingRestores = new Set<() => Promise<void>>();

/**
 * Turns on the append-only file with an fsync per write and waits until
 * Redis writes it; resolves with the function that restores the previous
 * settings. That function is in `pendingRestores` from the moment of the
 * call (so that Ctrl-C at any point puts Redis back) until it has run.
 */
export function makeDurable(): Promise<() => Promise<void>> {
  let r: Redis | undefined;
  let before: RedisDurability | undefined;
  let restored = false;
  const restore = async () => {
    if (restored) return;
    restored = true;
    pendingRestores.delete(restore);
    try {
      if (r && before) {
        await r.config("SET", "appendfsync", before.appendfsync);
        await r.config("SET", "appendonly", before.appendonly);
      }
    } finally {
      r?.disconnect();
    }
  };
  pendingRestores.add(restore);
  return (async () => {
    r = await adminRedis();
    before = await redisDurability(r);
    await r.config("SET", "appendfsync", "always");
    await r.config("SET", "appendonly", "yes");
    // Turning the AOF on starts a rewrite; writes are fsynced once it is done.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const info = await r.info("persistence");
      if (/^aof_enabled:1/m.test(info) && /^aof_rewrite_in_progress:0/m.test(info) && /^aof_rewrite_scheduled:0/m.test(info)) break;
      if (Date.now() > deadline) throw new Error("Redis did not finish turning on its append-only file within 30 s");
      await new Promise((res) => setTimeout(res, 50));
    }
    return restore;
  })().catch(async (e) => {
    await restore().catch(() => {});
    throw e;
  });
}

/**
 * Undefined when this Redis lets the benchmark change its persistence
 * settings (sets `appendfsync` to the value it has), else why not.
 */
export async function canMakeDurable(): Promise<string | undefined> {
  let r: Redis | undefined;
  try {
    r = await adminRedis();
    const { appendfsync } = await redisDurability(r);
    await r.config("SET", "appendfsync", appendfsync);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    r?.disconnect();
  }
}

/** Redis's version and persistence settings, for the header. */
export async function describeRedis(): Promise<string> {
  const r = await adminRedis();
  try {
    const version = /^redis_version:(\S+)/m.exec(await r.info("server"))?.[1] ?? "?";
    const d = await redisDurability(r);
    return `${version} at ${redisUrl().replace(/\/\/[^@]*@/, "//")}; appendonly ${d.appendonly}, appendfsync ${d.appendfsync}`;
  } finally {
    r.disconnect();
  }
}

/** The pid of redis-server when it runs on this machine (for its CPU time), else none. */
export async function redisPid(r: Redis): Promise<number | undefined> {
  const pid = Number(/^process_id:(\d+)/m.exec(await r.info("server"))?.[1]);
  return Number.isInteger(pid) && existsSync(`/proc/${pid}/stat`) ? pid : undefined;
}
