import { InvalidArgumentError } from "commander";
import { parseProcessKey, splitCommand } from "../worker/process-task.js";

/**
 * One `--process 'NAME@vX.Y=COMMAND LINE'` of `sluice runner`, added to those
 * before it. The command line is split as a shell would, without a shell.
 */
export function collectProcess(raw: string, previous: Record<string, string[]> = {}): Record<string, string[]> {
  const eq = raw.indexOf("=");
  if (eq < 0) throw new InvalidArgumentError(`--process ${raw}: use NAME@vX.Y=COMMAND, e.g. 'resize@v1.0=python3 resize.py'`);
  const key = raw.slice(0, eq).trim();
  try {
    parseProcessKey(key);
    if (key in previous) throw new TypeError(`process task ${key} is given twice`);
    return { ...previous, [key]: splitCommand(raw.slice(eq + 1)) };
  } catch (e) {
    throw new InvalidArgumentError(`--process ${raw}: ${(e as Error).message}`);
  }
}
