#!/usr/bin/env node
import { fileURLToPath } from "node:url";
import { realpathSync } from "node:fs";
import { Command, InvalidArgumentError } from "commander";
import { configFromEnv } from "./config.js";
import { ConnectionLimitsDefaults, LIMIT_SETTINGS, RequestLimitsDefaults } from "./limits.js";
import { runServer } from "./main.js";

const port = (raw: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError("--port must be an integer from 0 to 65535");
  return n;
};

const int = (name: string) => (raw: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
};

type LimitName = keyof typeof LIMIT_SETTINGS;
const limitFlag = (name: LimitName, arg: string) => `${LIMIT_SETTINGS[name].flag} ${arg}`;
const limitInt = (name: LimitName) => int(LIMIT_SETTINGS[name].flag);
const limitHelp = (name: LimitName) => {
  const defaults: Record<string, number> = { ...ConnectionLimitsDefaults, ...RequestLimitsDefaults };
  return `${LIMIT_SETTINGS[name].env}, default ${defaults[name]}`;
};

/** The server's command line: `sluice-server`, and `sluice server` where this package is installed. */
export function serverCommand(name = "sluice-server"): Command {
  return new Command(name)
    .description("start a server (an embedded PostgreSQL unless DATABASE_URL is set)")
    .showHelpAfterError()
    .option("--host <host>", "interface to listen on (SLUICE_HOST, default 127.0.0.1)")
    .option("--port <port>", "port to listen on (SLUICE_PORT, default 8080)", port)
    .option("--data-dir <dir>", "where the embedded PostgreSQL keeps its data (SLUICE_DATA_DIR, default .sluice)")
    .option(limitFlag("firstBytesTimeoutMs", "<ms>"), `close a new connection that sent nothing for this long (${limitHelp("firstBytesTimeoutMs")})`, limitInt("firstBytesTimeoutMs"))
    .option(limitFlag("idleTimeoutMs", "<ms>"), `close a connection with no request in progress for this long (${limitHelp("idleTimeoutMs")})`, limitInt("idleTimeoutMs"))
    .option(limitFlag("maxConnections", "<n>"), `connections open at once; more are closed at once (${limitHelp("maxConnections")})`, limitInt("maxConnections"))
    .option(limitFlag("maxStreamsPerConnection", "<n>"), `HTTP/2 streams open at once per connection (${limitHelp("maxStreamsPerConnection")})`, limitInt("maxStreamsPerConnection"))
    .option(limitFlag("maxRequestBytes", "<bytes>"), `the largest request message (${limitHelp("maxRequestBytes")})`, limitInt("maxRequestBytes"))
    .option(limitFlag("maxConcurrentRequests", "<n>"), `requests handled at once; the rest wait (${limitHelp("maxConcurrentRequests")})`, limitInt("maxConcurrentRequests"))
    .option("--auth <mode>", "bearer tokens: auto (needed beyond loopback) or required (SLUICE_AUTH, default auto)")
    .option("--insecure-no-auth", "listen beyond loopback without authentication: anyone who reaches the port may do anything")
    .option("--tls-cert <file>", "serve TLS with this certificate (PEM; SLUICE_TLS_CERT)")
    .option("--tls-key <file>", "the certificate's private key (PEM; SLUICE_TLS_KEY)")
    .option("--tls-client-ca <file>", "ask clients for certificates signed by this CA (PEM; SLUICE_TLS_CLIENT_CA)")
    .action(async (opts: { host?: string; port?: number; dataDir?: string; auth?: string; insecureNoAuth?: boolean; tlsCert?: string; tlsKey?: string; tlsClientCa?: string } & Partial<Record<LimitName, number>>) => {
      if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) throw new InvalidArgumentError("--tls-cert and --tls-key go together");
      if (opts.auth !== undefined && !["auto", "required"].includes(opts.auth)) {
        throw new InvalidArgumentError(`--auth must be auto or required (--insecure-no-auth turns tokens off), got "${opts.auth}"`);
      }
      const env = configFromEnv();
      const pick = <T extends object>(base: T) =>
        Object.fromEntries(Object.keys(base).map((k) => [k, (opts as Record<string, unknown>)[k] ?? (base as Record<string, unknown>)[k]])) as T;
      await runServer({
        ...(opts.host !== undefined && { host: opts.host }),
        ...(opts.port !== undefined && { port: opts.port }),
        ...(opts.dataDir !== undefined && { dataDir: opts.dataDir }),
        ...(opts.auth !== undefined && { auth: opts.auth as "auto" | "required" }),
        ...(opts.insecureNoAuth && { auth: "off" as const }),
        ...(opts.tlsCert !== undefined && { tls: { certFile: opts.tlsCert, keyFile: opts.tlsKey!, clientCaFile: opts.tlsClientCa } }),
        connections: pick(env.connections),
        requests: pick(env.requests),
      });
    });
}

/** Runs the server's command line on `args` (the arguments after the command's name). */
export async function main(args: string[], name?: string): Promise<void> {
  try {
    await serverCommand(name).parseAsync(args, { from: "user" });
  } catch (e) {
    console.error(e instanceof Error ? `error: ${e.message}` : e);
    process.exitCode = 1;
  }
}

// Run when started as a program (the sluice-server bin), not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main(process.argv.slice(2));
}
