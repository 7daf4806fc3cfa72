import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Child, ROOT, childOf, createDatabase } from "./support/harness.js";

const run = promisify(execFile);

/**
 * The published packages, used as a user would: packed with `npm pack`,
 * installed with `npm install` into folders outside the repository, and run
 * there with plain Node. The build and the installs are done once.
 */
describe("the sluice and sluice-server packages, installed from their tarballs", () => {
  let work: string;
  let sdkOnly: string;
  let app: string;
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let server: Child & { url: string };
  let noLoader: Awaited<ReturnType<typeof cmd>>;
  /** The packages installing the SDK alone installs. */
  const installedBySdk: string[] = [];
  const children: Child[] = [];

  /** A command in a folder, to its end; `npx` finds the packages' bins there. */
  async function cmd(cwd: string, file: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    try {
      const { stdout, stderr } = await run(file, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return { code: err.code ?? -1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
    }
  }

  /** A long-running process in a folder, in its own process group so that npx's children stop with it. */
  function start(cwd: string, file: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
    const child = childOf(spawn(file, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true }));
    children.push(child);
    return child;
  }

  async function npmInstall(cwd: string, specs: string[]) {
    const r = await cmd(cwd, "npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", ...specs]);
    expect(r.code, r.stderr).toBe(0);
    // Our packages' dependency trees support every Node version our engines field admits.
    expect(r.stderr).not.toContain("EBADENGINE");
    return r;
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "sluice-packages-"));
    const built = await cmd(ROOT, process.execPath, ["--import", "tsx", join(ROOT, "scripts", "pack.ts"), "--out", join(work, "tarballs")]);
    expect(built.code, built.stderr).toBe(0);
    const [sdkTgz, serverTgz] = built.stdout.trim().split("\n").slice(-2);
    expect(sdkTgz).toMatch(/sluice-\d.*\.tgz$/);
    expect(serverTgz).toMatch(/sluice-server-\d.*\.tgz$/);

    sdkOnly = join(work, "sdk-only");
    app = join(work, "app");
    for (const dir of [sdkOnly, app]) {
      await mkdir(dir);
      await writeFile(join(dir, "package.json"), JSON.stringify({ name: "user-project", private: true, type: "module" }));
    }
    // One after the other: two npm installs at once contend for the cache.
    await npmInstall(sdkOnly, [sdkTgz]);
    const modules = join(sdkOnly, "node_modules");
    for (const name of await readdir(modules)) {
      if (name.startsWith("@")) for (const sub of await readdir(join(modules, name))) installedBySdk.push(`${name}/${sub}`);
      else if (!name.startsWith(".")) installedBySdk.push(name);
    }
    const du = await cmd(sdkOnly, "du", ["-sh", "node_modules"]);
    console.log(`the SDK alone installs ${du.stdout.split("\t")[0]} of node_modules`);
    await writeFile(join(sdkOnly, "typed.ts"), "export {};\n");
    noLoader = await cmd(sdkOnly, "npx", ["sluice", "runner", "typed.ts"]);
    await npmInstall(sdkOnly, ["@types/node@20", "tsx"]);
    await npmInstall(app, [sdkTgz, serverTgz]);

    // Empty: the installed server applies the migrations it ships.
    db = await createDatabase({ empty: true });
    server = Object.assign(start(app, "npx", ["sluice-server", "--port", "0"], { DATABASE_URL: db.url }), { url: "" });
    [, server.url] = await server.waitFor(/listening on (http:\/\/\S+)/, 60_000);
  }, 300_000);

  afterAll(async () => {
    for (const c of children) {
      if (c.process.exitCode === null && c.process.signalCode === null && c.process.pid) {
        try {
          process.kill(-c.process.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    await db?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("the SDK alone installs five packages beside itself: no server, embedded PostgreSQL, watcher, TypeScript runtime, cloud or Kubernetes SDK", async () => {
    expect(installedBySdk.sort()).toEqual(["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node", "commander", "shell-quote", "sluice"]);
    const shipped = await readdir(join(sdkOnly, "node_modules", "sluice"));
    expect(shipped.sort()).toEqual(["README.md", "gen", "package.json", "runner"]);

    // What the optional parts say when used without their packages.
    await writeFile(
      join(sdkOnly, "missing.mjs"),
      `import { AmazonS3Cache, GoogleStorageCache } from "sluice";
for (const cache of [new AmazonS3Cache("bucket"), new GoogleStorageCache("bucket")]) {
  await cache.get("key").catch((e) => console.log(e.message));
}`,
    );
    const missing = await cmd(sdkOnly, process.execPath, ["missing.mjs"]);
    expect(missing.stdout).toContain("AmazonS3Cache needs the package @aws-sdk/client-s3: install it beside sluice (npm install @aws-sdk/client-s3)");
    expect(missing.stdout).toContain("GoogleStorageCache needs the package @google-cloud/storage");
    const noServer = await cmd(sdkOnly, "npx", ["sluice", "server"]);
    expect(noServer.code).toBe(1);
    expect(noServer.stderr).toContain("`sluice server` needs the server package: npm install sluice-server");
    // Before tsx was installed beside it.
    expect(noLoader.stderr).toContain("typed.ts is TypeScript: install tsx in your project (npm install -D tsx)");
    const noWatcher = await cmd(sdkOnly, "npx", ["sluice", "watch", ".", "--location", "1", "--token", "t"]);
    expect(noWatcher.stderr).toContain("watching a folder needs the package @parcel/watcher");

    // CommonJS: Node's require(esm) loads the ESM build.
    await writeFile(join(sdkOnly, "require.cjs"), `const { Client, Task } = require("sluice"); console.log(typeof Client, typeof Task);`);
    expect((await cmd(sdkOnly, process.execPath, ["require.cjs"])).stdout.trim()).toBe("function function");
  });

  it("a strict TypeScript project (module nodenext) type-checks against the shipped declarations", async () => {
    // skipLibCheck as `tsc --init` writes it: the cache options name the optional cloud SDKs' types.
    await writeFile(
      join(sdkOnly, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", noEmit: true, skipLibCheck: true, types: ["node"] },
        files: ["check.ts"],
      }),
    );
    await writeFile(
      join(sdkOnly, "check.ts"),
      `import { Client, type ExecutionContext, LocalFileSystemCache, Task, type Job } from "sluice";

export class Resize extends Task<{ key: string; width: number }> {
  static identifier = { name: "Resize", version: "v1.0" };
  async execute(context: ExecutionContext): Promise<void> {
    await context.jobCache.setText(this.input.key, String(this.input.width));
  }
}

const client = new Client({ url: "http://127.0.0.1:8080" });
const job: Job = await client.jobs().submit("resize", new Resize({ key: "a.png", width: 640 }));
const runner = client.runner("default", { tasks: [Resize], cache: new LocalFileSystemCache("/tmp/cache") });
console.log(job.id.toUpperCase(), runner.id);
// @ts-expect-error: the input is checked against the task's type
new Resize({ key: "a.png", width: "wide" });
`,
    );
    const tsc = await cmd(sdkOnly, process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "."]);
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.code).toBe(0);
  });

  it("serves the console, and runs a plain .mjs runner and submitter and the sluice CLI against the installed server", async () => {
    const env = { SLUICE_URL: server.url };
    const consolePage = await fetch(new URL("/ui/", server.url));
    expect(await consolePage.text()).toContain("<title>Sluice</title>");
    // The server's database client is the patched postgres.js it ships with
    // (docs/reliability.md), whatever else the project installs.
    const where = await cmd(join(app, "node_modules", "sluice-server"), process.execPath, ["-p", "require.resolve('postgres')"]);
    expect(where.stdout.trim()).toBe(join(app, "node_modules", "sluice-server", "node_modules", "postgres", "cjs", "src", "index.js"));
    const client = await readFile(join(app, "node_modules", "sluice-server", "node_modules", "postgres", "src", "connection.js"), "utf8");
    expect(client).toContain("Every query written to the closed socket fails");

    await writeFile(
      join(app, "tasks.mjs"),
      `import { Task } from "sluice";
export class Hello extends Task {
  static identifier = { name: "Hello", version: "v1.0" };
  async execute(context) {
    await context.jobCache.setText("greeting", "Hello, " + this.input.who);
    context.submitSubtask(new Shout({}));
  }
}
export class Shout extends Task {
  static identifier = { name: "Shout", version: "v1.0" };
  async execute(context) {
    console.log((await context.jobCache.getText("greeting")).toUpperCase() + "!");
  }
}
`,
    );
    await writeFile(
      join(app, "submit.mjs"),
      `import { Client } from "sluice";
import { Hello } from "./tasks.mjs";
const client = new Client();
const job = await client.jobs().submit("hello " + process.argv[2], new Hello({ who: process.argv[2] }));
console.log("submitted job " + job.id);
client.close();
`,
    );
    await writeFile(
      join(app, "runner.mjs"),
      `import { Client } from "sluice";
import { Hello, Shout } from "./tasks.mjs";
const client = new Client();
await client.runner("default", { tasks: [Hello, Shout] }).runAll();
client.close();
`,
    );

    const submitted = await cmd(app, process.execPath, ["submit.mjs", "world"], env);
    expect(submitted.stderr).toBe("");
    const [, first] = submitted.stdout.match(/submitted job (\d+)/)!;
    const ran = await cmd(app, process.execPath, ["runner.mjs"], env);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain("HELLO, WORLD!");

    // The CLI's runner, with a job cache in a folder, on the same tasks module.
    const second = (await cmd(app, process.execPath, ["submit.mjs", "folks"], env)).stdout.match(/submitted job (\d+)/)![1];
    const cacheDir = join(work, "shared-cache");
    const cliRunner = await cmd(app, "npx", ["sluice", "runner", "tasks.mjs", "--all", "--cache", `fs:${cacheDir}`], env);
    expect(cliRunner.code, cliRunner.stderr).toBe(0);
    expect(cliRunner.stdout).toContain("HELLO, FOLKS!");
    expect(await readdir(cacheDir)).toContain(second);

    const list = await cmd(app, "npx", ["sluice", "jobs", "list"], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^\\s*${first}\\s+completed\\s.*hello world$`, "m"));
    expect(list.stdout).toMatch(new RegExp(`^\\s*${second}\\s+completed\\s.*hello folks$`, "m"));

    // A TypeScript module, with the tsx its project has (the SDK-only project).
    await writeFile(
      join(sdkOnly, "typed.ts"),
      `import { Task } from "sluice";
export class Double extends Task<{ n: number }> {
  static identifier = { name: "Double", version: "v1.0" };
  execute(): void {
    const twice: number = this.input.n * 2;
    console.log(\`twice ${"$"}{this.input.n} is ${"$"}{twice}\`);
  }
}
`,
    );
    const typed = await cmd(sdkOnly, "npx", ["sluice", "jobs", "submit", "double", "--task", "Double@v1.0", "--input", '{"n":21}'], env);
    expect(typed.stdout, typed.stderr).toMatch(/submitted job \d+/);
    const tsRunner = await cmd(sdkOnly, "npx", ["sluice", "runner", "typed.ts", "--all"], env);
    expect(tsRunner.code, tsRunner.stderr).toBe(0);
    expect(tsRunner.stdout).toContain("twice 21 is 42");

    // `sluice server` is there too where the server package is installed.
    const help = await cmd(app, "npx", ["sluice", "server", "--help"]);
    expect(help.stdout).toContain("--data-dir <dir>");
  });
});
