import type { Sql } from "postgres";
import { TOKENS_CHANNEL } from "./channels.js";


export type ScopeName = "read" | "submit" | "runner" | "admin";

export interface TokenRow {
  id: string;
  name: string;
  secret_hash: Buffer;
  scopes: ScopeName[];
  clusters: string[];
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
}

const COLUMNS = "id::text, name, secret_hash, scopes, clusters, created_at, expires_at, revoked_at";

export async function createToken(
  sql: Sql,
  token: { name: string; secretHash: Buffer; scopes: readonly ScopeName[]; clusters: readonly string[]; expiresAt: Date | null },
): Promise<TokenRow> {
  const [row] = await sql<TokenRow[]>`
    INSERT INTO api_tokens (name, secret_hash, scopes, clusters, expires_at)
    VALUES (${token.name}, ${token.secretHash}, ${token.scopes as string[]}::text[], ${token.clusters as string[]}::text[], ${token.expiresAt})
    RETURNING ${sql.unsafe(COLUMNS)}`;
  return row;
}

/** A token by id, revoked and expired ones included; null when there is none. */
export async function getToken(sql: Sql, id: string): Promise<TokenRow | null> {
  const [row] = await sql<TokenRow[]>`SELECT ${sql.unsafe(COLUMNS)} FROM api_tokens WHERE id = ${id}`;
  return row ?? null;
}

/** Tokens newest first, below `beforeId` when given. */
export async function listTokens(sql: Sql, beforeId: string | null, limit: number): Promise<TokenRow[]> {
  return sql<TokenRow[]>`
    SELECT ${sql.unsafe(COLUMNS)} FROM api_tokens
    WHERE ${beforeId === null ? sql`true` : sql`id < ${beforeId}`}
    ORDER BY id DESC LIMIT ${limit}`;
}

/** Revokes a token and tells every server; null when there is none. */
export async function revokeToken(sql: Sql, id: string): Promise<TokenRow | null> {
  const [row] = await sql<TokenRow[]>`
    WITH revoked AS (
      UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = ${id}
      RETURNING ${sql.unsafe(COLUMNS)}
    )
    SELECT revoked.*, pg_notify(${TOKENS_CHANNEL}, revoked.id) AS notified FROM revoked`;
  return row ?? null;
}

/** Whether any token that still works exists (a bootstrap admin token is made when none does). */
export async function anyAdminToken(sql: Sql): Promise<boolean> {
  const [row] = await sql<{ exists: boolean }[]>`
    SELECT EXISTS (
      SELECT 1 FROM api_tokens
      WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AND 'admin' = ANY(scopes)
    ) AS exists`;
  return row.exists;
}
