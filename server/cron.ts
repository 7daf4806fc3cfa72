import { Cron } from "croner";

/** A parsed cron trigger: an expression read in a time zone. */
export interface CronSchedule {
  expression: string;
  timeZone: string;
  cron: Cron;
}

/** Why a cron trigger cannot be stored: the field at fault and what to do instead. */
export class CronError extends Error {
  constructor(
    readonly field: "expression" | "time_zone",
    message: string,
  ) {
    super(message);
  }
}

const parsed = new Map<string, CronSchedule>();

/** A stored trigger (checked when it was created), cached: a tick of 1,000 triggers parses none again. */
export function cachedCron(expression: string, timeZone: string): CronSchedule {
  const key = `${timeZone}\0${expression}`;
  let schedule = parsed.get(key);
  if (!schedule) {
    schedule = compile(expression, timeZone);
    if (parsed.size > 10_000) parsed.clear();
    parsed.set(key, schedule);
  }
  return schedule;
}

/**
 * Parses a cron expression (five fields, or six with seconds first) in an IANA
 * time zone (UTC when empty) with croner, and checks that it fires after `now`.
 * Throws a CronError naming the bad field.
 */
export function parseCron(expression: string, timeZone: string, now: Date): CronSchedule {
  const schedule = compile(expression, timeZone);
  if (schedule.cron.nextRun(now) === null) throw new CronError("expression", `${JSON.stringify(expression)} never fires again`);
  return schedule;
}

function compile(expression: string, timeZone: string): CronSchedule {
  const tz = timeZone === "" ? "UTC" : timeZone;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
  } catch {
    throw new CronError("time_zone", `${JSON.stringify(timeZone)} is not an IANA time zone; use e.g. "Europe/Berlin" or "UTC"`);
  }
  let cron: Cron;
  try {
    cron = new Cron(expression, { timezone: tz, mode: "5-or-6-parts", paused: true });
  } catch (e) {
    const reason = (e as Error).message.replace(/^Cron(Pattern|Options)?: /, "");
    throw new CronError(
      "expression",
      `${JSON.stringify(expression)} is not a valid cron expression (${reason}); ` +
        `use five fields "minute hour day month weekday", or six with seconds first, e.g. "*/10 * * * * *"`,
    );
  }
  return { expression, timeZone: tz, cron };
}

/** The first tick after `after`, or null if there is none. */
export function nextTick(schedule: CronSchedule, after: Date): Date | null {
  return schedule.cron.nextRun(after);
}

/**
 * The tick to submit for a trigger that was due at `due`, at `now`: the latest
 * tick at or before `now` (ticks missed while no server ran are caught up once,
 * with the latest of them), never earlier than `due`.
 */
export function latestTick(schedule: CronSchedule, due: Date, now: Date): Date {
  const [previous] = schedule.cron.previousRuns(1, new Date(now.getTime() + 1));
  return previous && previous.getTime() > due.getTime() ? previous : due;
}
