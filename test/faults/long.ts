/**
 * The fault suite's long form: every scenario at full size, and the
 * starvation loop of issue 18 (one server, one runner of concurrency 16,
 * 20,000 queued no-op jobs, the server SIGKILLed and restarted after 1 s,
 * 20 times). Prints a Markdown table; exits 1 if any scenario went wrong.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run faults
 *   npm run faults -- --only starvation,restarts --seed 42 --lease-ttl-ms 10000
 *
 * Each scenario creates a database of its own on DATABASE_URL's server and
 * drops it afterwards. It uses both cores for several minutes.
 */
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import postgres from "postgres";
import {
  type ScenarioReport,
  type SuiteOptions,
  backendTerminations,
  interruptedSubmits,
  problems,
  runnerKills,
  secondServerKilled,
  serverRestarts,
} from "./scenarios.js";
import { SUBMITS_HAVE_KEYS } from "./submitter.js";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    seed: { type: "string" },
    "lease-ttl-ms": { type: "string", default: "10000" },
    "slack-ms": { type: "string", default: "20000" },
    quiet: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});

/** The scenarios by the names `--only` takes, with their full sizes. */
const scenarios: Record<string, { strictSubmits: boolean; run: (o: SuiteOptions) => Promise<ScenarioReport> }> = {
  "runner-kills": {
    strictSubmits: true,
    run: (o) => runnerKills(o, { jobs: 20_000, taskMs: 20, runners: 4, concurrency: 8, faults: 20 }),
  },
  restarts: {
    strictSubmits: true,
    run: (o) => serverRestarts(o, { jobs: 20_000, taskMs: 2, runners: 2, concurrency: 16, faults: 5, restartDelayMs: 1_000 }),
  },
  "second-server": {
    strictSubmits: true,
    run: (o) => secondServerKilled(o, { jobs: 20_000, taskMs: 5, runners: 4, concurrency: 8, faults: 1 }),
  },
  terminations: {
    strictSubmits: SUBMITS_HAVE_KEYS,
    run: (o) =>
      backendTerminations(o, {
        jobs: 20_000,
        taskMs: 2,
        runners: 2,
        concurrency: 16,
        faults: 5,
        terminationsPerFault: 3,
        ratePerSecond: 500,
      }),
  },
  submits: {
    strictSubmits: SUBMITS_HAVE_KEYS,
    run: (o) => interruptedSubmits(o, { submits: 10_000, ratePerSecond: 500, runners: 2, concurrency: 16, taskMs: 1, faults: 5, restartDelayMs: 1_000 }),
  },
  starvation: {
    strictSubmits: true,
    run: (o) => serverRestarts(o, { jobs: 20_000, taskMs: 0, runners: 1, concurrency: 16, faults: 20, restartDelayMs: 1_000 }),
  },
};

if (values.help) {
  console.log(`npm run faults -- [--only ${Object.keys(scenarios).join(",")}] [--seed N] [--lease-ttl-ms MS] [--slack-ms MS] [--quiet]`);
  process.exit(0);
}
const adminUrl = process.env.DATABASE_URL;
if (!adminUrl) {
  console.error("set DATABASE_URL to a PostgreSQL database (e.g. postgres://postgres@127.0.0.1:5432/postgres); each scenario creates and drops a database there");
  process.exit(2);
}
const only = values.only ? values.only.split(",") : Object.keys(scenarios);
const unknown = only.filter((n) => !(n in scenarios));
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(", ")}: use ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const options: SuiteOptions = {
  adminUrl,
  dbPrefix: `sluice_faults_${process.pid}_`,
  leaseTtlMs: Number(values["lease-ttl-ms"]),
  slackMs: Number(values["slack-ms"]),
  seed,
  log: values.quiet ? undefined : (line) => console.log(line),
};

const started = new Date();
console.log(`fault suite, long form: seed ${seed}, lease TTL ${options.leaseTtlMs} ms, ${cpus().length} cores, load ${loadavg()[0].toFixed(1)}, ${started.toISOString()}`);

// Ctrl-C: the children get the signal too; the databases are dropped here.
process.once("SIGINT", () => {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  sql<{ datname: string }[]>`SELECT datname FROM pg_database WHERE starts_with(datname, ${options.dbPrefix})`
    .then((dbs) => Promise.all(dbs.map((d) => sql.unsafe(`DROP DATABASE IF EXISTS "${d.datname}" WITH (FORCE)`))))
    .finally(() => process.exit(130));
});

const rows: string[][] = [];
const found: string[] = [];
const outputs: string[] = [];
for (const name of only) {
  const { run, strictSubmits } = scenarios[name];
  const r = await run(options);
  const wrong = problems(r, strictSubmits);
  for (const p of wrong) found.push(`${name}: ${p}`);
  if (r.diagnostics.length > 0) outputs.push(`${name}, the end of each server's and runner's output:\n${r.diagnostics.join("\n---\n")}`);
  rows.push(row(name, r, wrong.length === 0));
}

/** The middle and the largest of the times, or "never" when any fault did not come through. */
function spread(ms: (number | null | undefined)[]): string {
  const known = ms.filter((m) => m !== undefined);
  if (known.length === 0) return "";
  if (known.some((m) => m === null)) return "never";
  const sorted = (known as number[]).sort((a, b) => a - b);
  const s = (m: number) => (m / 1000).toFixed(1);
  return `${s(sorted[Math.floor(sorted.length / 2)])} / ${s(sorted[sorted.length - 1])}`;
}

function row(name: string, r: ScenarioReport, ok: boolean): string[] {
  return [
    name,
    String(r.faults.length),
    r.submitted.toLocaleString("en-US"),
    r.completed.toLocaleString("en-US"),
    String(r.executedMoreThanOnce),
    String(r.lost),
    String(r.miscounted + r.completedUnexecuted),
    String(r.acknowledgedMissing),
    String(r.writtenUnacknowledged),
    String(r.crashes.length),
    spread(r.faults.map((f) => f.downMs)),
    spread(r.faults.map((f) => f.movedMs)),
    spread(r.faults.map((f) => f.recoveredMs)),
    (r.drainMs / 1000).toFixed(1),
    ok ? "ok" : "FAILED",
  ];
}

const header = [
  "scenario",
  "faults",
  "submitted",
  "completed",
  "executed > once",
  "lost",
  "completed twice",
  "acked, missing",
  "written, unacked",
  "crashes",
  "down s (median / max)",
  "moving again s (median / max)",
  "held tasks back s (median / max)",
  "run s",
  "",
];
console.log(`\n| ${header.join(" | ")} |\n|${header.map(() => "---").join("|")}|`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
console.log(`\nseed ${seed}, lease TTL ${options.leaseTtlMs} ms, ${Math.round((Date.now() - started.getTime()) / 1000)} s in all`);
if (found.length > 0) {
  console.log(`\n${outputs.join("\n\n")}\n\n${found.join("\n")}`);
  process.exitCode = 1;
}
