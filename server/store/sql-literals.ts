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
 * double-quoted, its `"` and `\` escaped; null as NULL. Built by one join
 * where it can, not a string per element joined into a rope: large submits
 * build such a literal per text column.
 */
export function quotedArrayLiteral(values: readonly (string | null)[]): string {
  let nulls = 0;
  let plain = true;
  for (const v of values) {
    if (v === null) nulls++;
    else if (plain && (v.includes('"') || v.includes("\\"))) plain = false;
  }
  if (values.length === 0) return "{}";
  if (nulls === values.length) return `{${"NULL,".repeat(values.length - 1)}NULL}`;
  if (nulls === 0 && plain) return `{"${values.join('","')}"}`;
  const parts = values.map((v) => (v === null ? "NULL" : `"${v.replace(ESCAPED, "\\$&")}"`));
  return `{${parts.join(",")}}`;
}

const ESCAPED = /["\\]/g;
