import { Code, ConnectError } from "@connectrpc/connect";

/** The largest task input accepted, in bytes. Larger data belongs in the job cache. */
export const MAX_TASK_INPUT_BYTES = 1024 * 1024;
/** The most tasks one submission (a job, or the subtasks of one completion) may create. */
export const MAX_TASKS_PER_SUBMISSION = 100_000;
export const MAX_RETRIES_LIMIT = 100;

export function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

export function notFound(message: string): ConnectError {
  return new ConnectError(message, Code.NotFound);
}

export function failedPrecondition(message: string): ConnectError {
  return new ConnectError(message, Code.FailedPrecondition);
}

/** Parses a job or task id (a positive decimal integer sent as a string). */
/** A task, job or other id: a positive decimal bigint. */
export const ID_PATTERN = /^[1-9]\d{0,18}$/;

export function parseId(value: string, what: string): string {
  if (!ID_PATTERN.test(value)) {
    throw invalid(`${what} must be a positive decimal number such as "42", got ${JSON.stringify(value)}`);
  }
  return value;
}

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkSlug(slug: string, what = "cluster"): string {
  if (!SLUG.test(slug)) {
    throw invalid(
      `${what} slug ${JSON.stringify(slug)} is invalid: use 1 to 63 lower-case letters, digits and dashes, starting and ending with a letter or digit`,
    );
  }
  return slug;
}

export interface ParsedIdentifier {
  name: string;
  major: number;
  minor: number;
}

const VERSION = /^v(\d{1,6})\.(\d{1,6})$/;

/** Validates a task identifier: a name without whitespace and a "vMAJOR.MINOR" version. */
/**
 * Checks a task identifier. `where` names it in the error; as a function of
 * `i`, it is only built when there is an error to report.
 */
export function parseIdentifier(name: string, version: string, where: string | ((i: number) => string), i = 0): ParsedIdentifier {
  if (name.length === 0 || name.length > 200 || /\s/.test(name)) {
    throw invalid(`${typeof where === "string" ? where : where(i)}: task name ${JSON.stringify(name)} is invalid: use 1 to 200 characters without whitespace`);
  }
  if (UNSTORABLE.test(name)) checkText(name, `${typeof where === "string" ? where : where(i)}: task name`);
  const match = VERSION.exec(version);
  if (!match) {
    throw invalid(
      `${typeof where === "string" ? where : where(i)}: version ${JSON.stringify(version)} of task "${name}" is invalid: use "vMAJOR.MINOR", e.g. "v1.0"`,
    );
  }
  return { name, major: Number(match[1]), minor: Number(match[2]) };
}

export function formatVersion(major: number, minor: number): string {
  return `v${major}.${minor}`;
}

export function checkName(name: string, what: string): string {
  if (name.trim().length === 0 || name.length > 200) {
    throw invalid(`${what} must be 1 to 200 characters, got ${name.length === 0 ? "an empty name" : `${name.length} characters`}`);
  }
  checkText(name, what);
  return name;
}

/** A NUL character or an unpaired UTF-16 surrogate. */
const UNSTORABLE = /[\0\p{Cs}]/u;

/**
 * What makes `text` impossible to store as it is, or null: PostgreSQL text
 * has no NUL character, and an unpaired surrogate (which JSON's "\ud800"
 * escapes can produce) is not Unicode, so it would be changed on the way in.
 */
export function unstorableText(text: string): string | null {
  if (text.length === 0 || !UNSTORABLE.test(text)) return null;
  return text.includes("\0")
    ? "contains a NUL character (U+0000), which cannot be stored; remove it"
    : "contains an unpaired UTF-16 surrogate (U+D800 to U+DFFF), which is not valid Unicode; remove it";
}

/** `text` with what PostgreSQL cannot store replaced by U+FFFD, for text no caller chose (a task's error). */
export function replaceUnstorable(text: string): string {
  return UNSTORABLE.test(text) ? text.replace(/[\0\p{Cs}]/gu, "\uFFFD") : text;
}

/** Refuses (InvalidArgument, naming `what`) text PostgreSQL cannot store. */
export function checkText(text: string, what: string): void {
  const problem = unstorableText(text);
  if (problem !== null) throw invalid(`${what} ${problem}`);
}

/** A Connect code's name as sent in messages, e.g. "failed_precondition". */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
