// A runner process for bench/files.ts. Arguments: the server URL and the runner's concurrency.
import { Client } from "../../runner/index.js";
import { BenchIndex, BenchTranscode, BenchVerify } from "./file-tasks.js";

const client = new Client({ url: process.argv[2] });
const quiet = { info() {}, warn() {}, error: (m: string) => console.error(m) };
const runner = client.runner("default", { tasks: [BenchVerify, BenchTranscode, BenchIndex], concurrency: Number(process.argv[3] ?? 2), prefetch: 0, logger: quiet });
process.on("SIGTERM", () => void runner.stop().then(() => process.exit(0)));
console.log("runner started");
await runner.runForever();
