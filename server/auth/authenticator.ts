import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import type { Sql } from "postgres";
import { TOKENS_CHANNEL } from "../store/channels.js";
import { type ScopeName, type TokenRow, getToken } from "../store/tokens.js";
import { hashSecretPart, parseSecret, sameSecret } from "./secrets.js";

/** Who is calling, once authenticated. */
export interface Principal {
  /** The token's id; "admin" for the bootstrap token from SLUICE_ADMIN_TOKEN. */
  tokenId: string;
  scopes: readonly ScopeName[];
  /** For runner tokens: the clusters it may take work from; empty for all. */
  clusters: readonly string[];
}

/** The caller of a request, set by the auth interceptor; null when authentication is off. */
export const principalKey = createContextKey<Principal | null>(null, { description: "sluice principal" });

/** How long a verified token is trusted without reading it again (a revocation on another server's NOTIFY is at once). */
const CACHE_MS = 5_000;

const unauthenticated = (message: string) => new ConnectError(message, Code.Unauthenticated);

/**
 * Checks bearer tokens against the `api_tokens` table, with a short cache so
 * that a busy client costs no query per call. A revocation (a NOTIFY from any
 * server) drops the token from the cache and ends the streams open with it.
 */
export class Authenticator {
  private readonly cache = new Map<string, { row: TokenRow; at: number }>();
  private readonly streams = new Map<string, Set<() => void>>();
  private unlisten: (() => Promise<void>) | null = null;

  constructor(
    private readonly sql: Sql,
    /** A static admin secret (SLUICE_ADMIN_TOKEN), compared in constant time; none when empty. */
    private readonly adminSecret: string,
  ) {}

  async start(): Promise<void> {
    const listening = await this.sql.listen(
      TOKENS_CHANNEL,
      (id) => this.revoked(id),
      // After a reconnect of the listener, notifications may have been missed.
      () => this.cache.clear(),
    );
    this.unlisten = listening.unlisten;
  }

  async stop(): Promise<void> {
    await this.unlisten?.().catch(() => {});
  }

  /** The principal an Authorization header names; throws Unauthenticated saying what is wrong. */
  async verify(header: string | null): Promise<Principal> {
    if (!header) throw unauthenticated("this server needs a token: send Authorization: Bearer <token> (SLUICE_TOKEN for the SDK and CLI)");
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw unauthenticated("the Authorization header must be \"Bearer <token>\"");
    const secret = match[1];
    if (this.adminSecret !== "" && sameSecret(secret, this.adminSecret)) return { tokenId: "admin", scopes: ["admin"], clusters: [] };
    const parsed = parseSecret(secret);
    if (!parsed) throw unauthenticated("the token is not a Sluice token (it looks like <id>.<secret>)");
    const row = await this.token(parsed.id);
    if (!row || !sameSecret(hashSecretPart(parsed.part), row.secret_hash)) throw unauthenticated("the token is not valid");
    if (row.revoked_at) throw unauthenticated(`token ${row.id} was revoked`);
    if (row.expires_at && row.expires_at.getTime() <= Date.now()) throw unauthenticated(`token ${row.id} expired at ${row.expires_at.toISOString()}`);
    return { tokenId: row.id, scopes: row.scopes, clusters: row.clusters };
  }

  /** Calls `end` when the token is revoked; returns the function that stops watching. */
  watch(tokenId: string, end: () => void): () => void {
    let set = this.streams.get(tokenId);
    if (!set) this.streams.set(tokenId, (set = new Set()));
    set.add(end);
    return () => {
      set.delete(end);
      if (set.size === 0) this.streams.delete(tokenId);
    };
  }

  private async token(id: string): Promise<TokenRow | null> {
    const hit = this.cache.get(id);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.row;
    const row = await getToken(this.sql, id);
    if (row) this.cache.set(id, { row, at: Date.now() });
    else this.cache.delete(id);
    return row;
  }

  private revoked(id: string): void {
    this.cache.delete(id);
    for (const end of this.streams.get(id) ?? []) end();
  }
}
