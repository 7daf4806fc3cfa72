import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Client as ConnectClient } from "@connectrpc/connect";
import { type Token as TokenMessage, TokenScope, type TokenService } from "../../gen/sluice/v1/token_service_pb.js";

export type TokenScopeName = "read" | "submit" | "runner" | "admin";

const SCOPES: Record<TokenScopeName, TokenScope> = {
  read: TokenScope.READ,
  submit: TokenScope.SUBMIT,
  runner: TokenScope.RUNNER,
  admin: TokenScope.ADMIN,
};
const NAMES = new Map<TokenScope, TokenScopeName>(Object.entries(SCOPES).map(([n, v]) => [v, n as TokenScopeName]));

/** A bearer token as listed (never its secret). */
export interface TokenInfo {
  id: string;
  name: string;
  scopes: TokenScopeName[];
  /** For runner tokens: the clusters it may take work from; empty for all. */
  clusters: string[];
  createdAt: Date;
  expiresAt?: Date;
  revokedAt?: Date;
}

function tokenFromMessage(t: TokenMessage): TokenInfo {
  return {
    id: t.id,
    name: t.name,
    scopes: t.scopes.map((s) => NAMES.get(s) ?? "read"),
    clusters: t.clusters,
    createdAt: timestampDate(t.createdAt!),
    expiresAt: t.expiresAt ? timestampDate(t.expiresAt) : undefined,
    revokedAt: t.revokedAt ? timestampDate(t.revokedAt) : undefined,
  };
}

/** Creates, lists and revokes bearer tokens (needs an admin token). */
export class TokenClient {
  constructor(private readonly api: ConnectClient<typeof TokenService>) {}

  /** Creates a token; its secret is in the answer and nowhere else. */
  async create(
    name: string,
    scopes: readonly TokenScopeName[],
    options: { clusters?: string[]; expiresAt?: Date } = {},
  ): Promise<TokenInfo & { secret: string }> {
    const unknown = scopes.find((s) => !(s in SCOPES));
    if (unknown !== undefined) throw new TypeError(`scope "${unknown}" is not one of read, submit, runner, admin`);
    const res = await this.api.createToken({
      name,
      scopes: scopes.map((s) => SCOPES[s]),
      clusters: options.clusters ?? [],
      expiresAt: options.expiresAt ? timestampFromDate(options.expiresAt) : undefined,
    });
    return { ...tokenFromMessage(res.token!), secret: res.secret };
  }

  /** Every token, newest first. */
  async list(): Promise<TokenInfo[]> {
    const out: TokenInfo[] = [];
    let pageToken = "";
    do {
      const res = await this.api.listTokens({ pageSize: 1000, pageToken });
      out.push(...res.tokens.map(tokenFromMessage));
      pageToken = res.nextPageToken;
    } while (pageToken !== "");
    return out;
  }

  /** Revokes a token: calls with it fail, and its open streams end, within seconds. */
  async revoke(id: string): Promise<TokenInfo> {
    return tokenFromMessage((await this.api.revokeToken({ id })).token!);
  }
}
