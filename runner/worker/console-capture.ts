import { AsyncLocalStorage } from "node:async_hooks";
import { format } from "node:util";
import { LogLevel } from "../../gen/sluice/v1/observability_pb.js";

/** Where the console output of one task attempt goes. */
export interface ConsoleSink {
  write(level: LogLevel, message: string): void;
}

const current = new AsyncLocalStorage<ConsoleSink>();
/** The sink of the synchronous task running now (withConsoleSync), checked before the storage. */
let synchronous: ConsoleSink | undefined;
const METHODS = { log: LogLevel.INFO, info: LogLevel.INFO, warn: LogLevel.WARN, error: LogLevel.ERROR, debug: LogLevel.DEBUG } as const;
type Method = keyof typeof METHODS;
let installed = 0;
let originals: Record<Method, (...args: unknown[]) => void> | null = null;

/**
 * The console as the process had it, for the runner's own output (also while
 * the capture is installed).
 */
export function originalConsole(): Record<Method, (...args: unknown[]) => void> {
  return originals ?? { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug };
}

/**
 * Routes console.log/info/warn/error/debug made while a task executes (in its
 * asynchronous continuations too: AsyncLocalStorage follows them) to that
 * task's sink, keeping the output of concurrent tasks apart; output made
 * outside any task goes to the console as before. Counted: the console is
 * restored when the last runner that installed it stops.
 */
export function installConsoleCapture(): () => void {
  if (installed++ === 0) {
    const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug };
    originals = saved;
    for (const m of Object.keys(METHODS) as Method[]) {
      const level = METHODS[m];
      const original = saved[m];
      console[m] = function (this: unknown, ...args: unknown[]) {
        const sink = synchronous ?? current.getStore();
        if (sink === undefined) return original.apply(console, args);
        sink.write(level, format(...args));
      };
    }
  }
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--installed === 0 && originals) {
      Object.assign(console, originals);
      originals = null;
    }
  };
}

/**
 * Routes the console to `sink` until `leaveSyncConsole`, for a synchronous
 * call (not callbacks it leaves behind): no asynchronous context is made.
 * Returns what to pass to `leaveSyncConsole`.
 */
export function enterSyncConsole(sink: ConsoleSink): ConsoleSink | undefined {
  const outer = synchronous;
  synchronous = sink;
  return outer;
}

/** Ends what `enterSyncConsole` began. */
export function leaveSyncConsole(outer: ConsoleSink | undefined): void {
  synchronous = outer;
}

/** Runs `fn` with the console routed to `sink` (for everything it starts, too). */
export function withConsole<T>(sink: ConsoleSink, fn: () => T): T {
  return current.run(sink, fn);
}
