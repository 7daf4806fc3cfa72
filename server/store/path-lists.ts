import type { Sql, TransactionSql } from "postgres";
import { arrayLiteral, quotedArrayLiteral } from "./sql-literals.js";

/** A path object as stored: `extra` is the JSON text of its other keys, or null. */
export interface PathIn {
  path: string;
  size: string | null;
  message: string | null;
  extra: string | null;
}

/** The columns of a page of paths as array literals: one parameter each, whatever the page size. */
export function pathColumns(paths: readonly PathIn[]) {
  return {
    paths: quotedArrayLiteral(paths.map((p) => p.path)),
    sizes: arrayLiteral(paths.map((p) => p.size ?? "NULL")),
    messages: quotedArrayLiteral(paths.map((p) => p.message)),
    extras: quotedArrayLiteral(paths.map((p) => p.extra)),
  };
}

/** A list named a path twice: the unique index refused the page, nothing of it was written. */
export class DuplicatePath extends Error {
  constructor(readonly path: string) {
    super(`path ${JSON.stringify(path)} is given twice; each path may be in a list once`);
  }
}

/** The path the unique index of a list's paths reported twice, or null for any other error. */
function duplicateOf(e: unknown): string | null {
  const err = e as { code?: string; constraint_name?: string; detail?: string } | null;
  if (err?.code !== "23505" || err.constraint_name !== "path_list_items_by_path") return null;
  // Key (list_id, path)=(7, /a/b) already exists.
  const m = /=\(\d+, (.*)\) already exists/s.exec(err.detail ?? "");
  return m ? m[1] : "?";
}

/** Creates an empty staged list (no job yet). */
export async function createPathList(sql: Sql | TransactionSql): Promise<string> {
  const [row] = await sql<{ id: string }[]>`INSERT INTO path_lists DEFAULT VALUES RETURNING id`;
  return row.id;
}

/**
 * Appends a page of paths to a list that no job uses yet, in one statement:
 * positions follow the list's total, which the statement locks and moves on.
 * Returns the new total, or null when there is no such staged list. Throws
 * DuplicatePath when a path is in the list already (or twice in the page).
 */
export async function appendPaths(sql: Sql | TransactionSql, listId: string, paths: readonly PathIn[]): Promise<bigint | null> {
  const c = pathColumns(paths);
  try {
    const [row] = await sql<{ found: string; total: string | null }[]>`
      WITH l AS MATERIALIZED (
        SELECT id, total FROM path_lists WHERE id = ${listId}::bigint AND job_id IS NULL FOR UPDATE
      ), ins AS (
        INSERT INTO path_list_items (list_id, ord, path, size, message, extra)
        SELECT l.id, l.total + r.i, r.path, r.size, r.message, r.extra
        FROM l,
             (SELECT ${c.paths}::text[] AS p, ${c.sizes}::bigint[] AS s, ${c.messages}::text[] AS m, ${c.extras}::jsonb[] AS e OFFSET 0) AS a,
             unnest(a.p, a.s, a.m, a.e) WITH ORDINALITY AS r(path, size, message, extra, i)
        RETURNING 1
      ), moved AS (
        UPDATE path_lists p SET total = l.total + (SELECT count(*) FROM ins) FROM l WHERE p.id = l.id RETURNING p.total
      )
      SELECT (SELECT count(*) FROM l) AS found, (SELECT total FROM moved) AS total`;
    return row.found === "0" ? null : BigInt(row.total ?? "0");
  } catch (e) {
    const dup = duplicateOf(e);
    if (dup !== null) throw new DuplicatePath(dup);
    throw e;
  }
}

/** A staged list's total, or null when no staged list has that id (unknown, or used by a job). */
export async function stagedListTotal(sql: Sql | TransactionSql, listId: string, lock = false): Promise<bigint | null> {
  const rows = lock
    ? await sql<{ total: string }[]>`SELECT total FROM path_lists WHERE id = ${listId}::bigint AND job_id IS NULL FOR UPDATE`
    : await sql<{ total: string }[]>`SELECT total FROM path_lists WHERE id = ${listId}::bigint AND job_id IS NULL`;
  return rows.length === 0 ? null : BigInt(rows[0].total);
}

/** Deletes a staged list (one whose submit was refused after it was built). */
export async function dropStagedList(sql: Sql, listId: string): Promise<void> {
  await sql`DELETE FROM path_lists WHERE id = ${listId}::bigint AND job_id IS NULL`;
}

/** Deletes staged lists older than `maxAgeMs` that no job took (their items go with them). */
export async function dropStaleLists(sql: Sql, maxAgeMs: number): Promise<number> {
  const rows = await sql`
    DELETE FROM path_lists WHERE job_id IS NULL AND created_at < now() - ${maxAgeMs}::int * interval '1 millisecond' RETURNING 1`;
  return rows.length;
}
