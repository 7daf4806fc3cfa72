/**
 * Preloaded into a `sluice server` child process (`node --import tsx --import
 * this`) so that fauxqs's queue URLs (http://sqs.REGION.localhost:PORT/...)
 * resolve there, as `interceptLocalhostDns()` does in the test suite's process.
 */
import { interceptLocalhostDns } from "fauxqs";

interceptLocalhostDns();
