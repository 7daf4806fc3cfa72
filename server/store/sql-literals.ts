/**
 * An array parameter as PostgreSQL's array literal, for values that need no
 * quoting: ids (validated digits), integers and NULL. postgres.js sends a
 * string as it is, where it would quote and escape every element of a
 * JavaScript array one by one (a tenth of the server's time in the drain went
 * there for the ids of each completion).
 */
export function arrayLiteral(values: readonly (string | number)[]): string {
  return `{${values.join(",")}}`;
}

/**
 * An array parameter as PostgreSQL's array literal for any text: each element
 * double-quoted, its `"` and `\` escaped; null as NULL.
 */
export function quotedArrayLiteral(values: readonly (string | null)[]): string {
  let out = "{";
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ",";
    out += v === null ? "NULL" : NEEDS_ESCAPE.test(v) ? `"${v.replace(ESCAPED, "\\$&")}"` : `"${v}"`;
  }
  return `${out}}`;
}

const NEEDS_ESCAPE = /["\\]/;
const ESCAPED = /["\\]/g;
