/**
 * A runner process of the fault suite: executes FaultTask against SLUICE_URL
 * until it is killed, and prints its runner id once it runs.
 *
 * Env: SLUICE_URL, FAULT_RECORDS (the file of execution records),
 * FAULT_CONCURRENCY (default 8).
 */
import { Client } from "../../runner/sdk/client.js";
import { FaultTask } from "./fault-task.js";

const concurrency = Number(process.env.FAULT_CONCURRENCY ?? 8);
// Connection warnings are expected while servers die; they are kept on stderr
// for a failed scenario to show, a bounded number of them.
let warnings = 0;
const logger = {
  info() {},
  warn: (m: string) => warnings++ < 200 && console.error(m),
  error: (m: string) => console.error(m),
};

const client = new Client({ url: process.env.SLUICE_URL });
const runner = client.runner("default", { tasks: [FaultTask], concurrency, logger });
const running = runner.runForever();
console.log(`fault runner ${runner.id} running`);
await running;
