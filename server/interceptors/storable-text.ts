import { type DescField, type DescMessage, type DescMethod, type DescService, ScalarType } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { invalid, unstorableText } from "../validation.js";

/** The fields of a message type that can hold text: strings, messages, and lists and maps of them. */
type Plan = readonly DescField[];

const plans = new WeakMap<DescMessage, Plan>();

const JSON_VALUES = new Set(["google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue"]);

function planOf(desc: DescMessage): Plan {
  let plan = plans.get(desc);
  if (!plan) {
    plan = desc.fields.filter((f) => {
      switch (f.fieldKind) {
        case "scalar":
          return f.scalar === ScalarType.STRING;
        case "message":
          // A JSON value (a task's input_json) is data, stored as bytes.
          return !JSON_VALUES.has(f.message.typeName);
        case "list":
          return (f.listKind === "message" && !JSON_VALUES.has(f.message.typeName)) || (f.listKind === "scalar" && f.scalar === ScalarType.STRING);
        case "map":
          return f.mapKey === ScalarType.STRING || f.mapKind === "message" || (f.mapKind === "scalar" && f.scalar === ScalarType.STRING);
        default:
          return false;
      }
    });
    plans.set(desc, plan);
  }
  return plan;
}

/** Where a field's text is wrong, innermost segment first, and what is wrong with it. */
interface Finding {
  path: string[];
  problem: string;
}

/** A value of a field of message type (wrapper types are unboxed to strings). */
function checkValue(value: unknown, message: DescMessage | undefined): Finding | null {
  if (typeof value === "string") {
    const problem = unstorableText(value);
    return problem === null ? null : { path: [], problem };
  }
  if (message !== undefined && typeof value === "object" && value !== null) return checkMessage(message, value as Record<string, unknown>);
  return null;
}

function checkMessage(desc: DescMessage, message: Record<string, unknown>): Finding | null {
  for (const f of planOf(desc)) {
    let value: unknown;
    if (f.oneof !== undefined) {
      const selected = message[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (selected?.case !== f.localName) continue;
      value = selected.value;
    } else {
      value = message[f.localName];
    }
    if (value === undefined || value === null) continue;
    let found: Finding | null = null;
    if (f.fieldKind === "list") {
      const items = value as unknown[];
      for (let i = 0; i < items.length && found === null; i++) {
        found = checkValue(items[i], f.listKind === "message" ? f.message : undefined);
        found?.path.push(`[${i}]`);
      }
    } else if (f.fieldKind === "map") {
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        const problem = f.mapKey === ScalarType.STRING ? unstorableText(key) : null;
        found = problem !== null ? { path: [" key"], problem } : checkValue(item, f.mapKind === "message" ? f.message : undefined);
        found?.path.push(`[${JSON.stringify(key)}]`);
        if (found !== null) break;
      }
    } else {
      found = checkValue(value, f.fieldKind === "message" ? f.message : undefined);
    }
    if (found !== null) {
      found.path.push(f.name);
      return found;
    }
  }
  return null;
}

/**
 * Throws InvalidArgument, naming the field (e.g. "tasks[2].identifier.name"),
 * for the first text field of `message` that PostgreSQL cannot store.
 */
export function checkStorableText(desc: DescMessage, message: object): void {
  const found = checkMessage(desc, message as Record<string, unknown>);
  if (found === null) return;
  const path = found.path.reverse().join(".").replace(/\.(\[|\s)/g, "$1");
  throw invalid(`${path} ${found.problem}`);
}

async function* checked<T extends object>(desc: DescMessage, messages: AsyncIterable<T>): AsyncIterable<T> {
  for await (const m of messages) {
    checkStorableText(desc, m);
    yield m;
  }
}

/**
 * Refuses requests with text PostgreSQL cannot store, in one place for every
 * field of every method, before a service sees them: a NUL character was an
 * internal error from the database. Services and methods in `skip` call
 * `checkStorableText` themselves where a refusal is per item (a job of a
 * batch, a runner's result), not of the whole request.
 */
export function storableText(skip: readonly (DescService | DescMethod)[]): Interceptor {
  const skipped = new Set<DescService | DescMethod>(skip);
  return (next) => async (req) => {
    if (skipped.has(req.service) || skipped.has(req.method)) return next(req);
    if (!req.stream) {
      checkStorableText(req.method.input, req.message);
      return next(req);
    }
    return next({ ...req, message: checked(req.method.input, req.message) });
  };
}
