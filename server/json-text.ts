import { isUtf8 } from "node:buffer";

/*
 * Checks that bytes are one JSON text (RFC 8259) without building it: a
 * submit of 10,000 tasks checks 10,000 inputs, and decoding and parsing each
 * (TextDecoder and JSON.parse) cost about a microsecond a task, more than the
 * rest of the submit's validation together; this scan allocates nothing.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OBJECT = 0x7b;
const OBJECT_END = 0x7d;
const ARRAY = 0x5b;
const ARRAY_END = 0x5d;

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isHex = (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

function skipSpace(b: Uint8Array, i: number): number {
  for (let c = b[i]; c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = b[++i]);
  return i;
}

/** The index after the string starting at `i`, or -1. */
function skipString(b: Uint8Array, i: number): number {
  if (b[i] !== QUOTE) return -1;
  for (i++; i < b.length; ) {
    const c = b[i];
    if (c === QUOTE) return i + 1;
    if (c < 0x20) return -1;
    if (c !== BACKSLASH) {
      if (c >= 0x80) beyondAscii = true;
      i++;
      continue;
    }
    const e = b[i + 1];
    if (e === 0x75 /* u */) {
      if (!(isHex(b[i + 2]) && isHex(b[i + 3]) && isHex(b[i + 4]) && isHex(b[i + 5]))) return -1;
      i += 6;
    } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
      i += 2;
    } else {
      return -1;
    }
  }
  return -1;
}

/** The index after the number starting at `i`, or -1. */
function skipNumber(b: Uint8Array, i: number): number {
  if (b[i] === 0x2d /* - */) i++;
  if (b[i] === 0x30) i++;
  else if (isDigit(b[i])) while (isDigit(b[i])) i++;
  else return -1;
  if (b[i] === 0x2e /* . */) {
    if (!isDigit(b[++i])) return -1;
    while (isDigit(b[i])) i++;
  }
  if (b[i] === 0x65 || b[i] === 0x45 /* e E */) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!isDigit(b[i])) return -1;
    while (isDigit(b[i])) i++;
  }
  return i;
}

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

function skipWord(b: Uint8Array, i: number, word: readonly number[]): number {
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word[k]) return -1;
  return i + word.length;
}

/** After "{" or ",": the index after `"key" :` and the space after it, or -1. */
function skipKey(b: Uint8Array, i: number): number {
  i = skipString(b, skipSpace(b, i));
  if (i < 0) return -1;
  i = skipSpace(b, i);
  return b[i] === 0x3a /* : */ ? skipSpace(b, i + 1) : -1;
}

/** The containers open around the scan's position, innermost last (one list for every scan). */
const open: number[] = [];
/** A byte beyond ASCII was seen (only strings may hold one): then the UTF-8 is checked. */
let beyondAscii = false;

/** Whether `bytes` are exactly one JSON text in UTF-8 (JSON.parse would take it), with no byte order mark. */
export function isJsonText(bytes: Uint8Array): boolean {
  const b = bytes;
  open.length = 0;
  beyondAscii = false;
  let i = skipSpace(b, 0);
  for (;;) {
    // A value starts at i.
    const c = b[i];
    if (c === OBJECT || c === ARRAY) {
      const j = skipSpace(b, i + 1);
      if (b[j] === (c === OBJECT ? OBJECT_END : ARRAY_END)) {
        i = j + 1;
      } else {
        open.push(c);
        i = c === OBJECT ? skipKey(b, i + 1) : j;
        if (i < 0) return false;
        continue;
      }
    } else if (c === QUOTE) {
      i = skipString(b, i);
    } else if (c === 0x2d || isDigit(c)) {
      i = skipNumber(b, i);
    } else if (c === 0x74) {
      i = skipWord(b, i, TRUE);
    } else if (c === 0x66) {
      i = skipWord(b, i, FALSE);
    } else if (c === 0x6e) {
      i = skipWord(b, i, NULL);
    } else {
      return false;
    }
    if (i < 0) return false;
    // After a value: the containers it ends, then a comma and the next value.
    for (;;) {
      i = skipSpace(b, i);
      if (open.length === 0) return i === b.length && (!beyondAscii || isUtf8(b));
      const container = open[open.length - 1];
      if (b[i] === 0x2c /* , */) {
        i = container === OBJECT ? skipKey(b, i + 1) : skipSpace(b, i + 1);
        if (i < 0) return false;
        break;
      }
      if (b[i] !== (container === OBJECT ? OBJECT_END : ARRAY_END)) return false;
      open.pop();
      i++;
    }
  }
}
