import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Token, TokenSchema, TokenScope, TokenService } from "../../gen/sluice/v1/token_service_pb.js";
import { hashSecretPart, newSecretPart, secretOf } from "../auth/secrets.js";
import { type ScopeName, type TokenRow, createToken, listTokens, revokeToken } from "../store/tokens.js";
import { checkName, checkSlug, invalid, notFound, parseId } from "../validation.js";
import type { ServiceDeps } from "./deps.js";

const SCOPE_NAMES: Record<TokenScope, ScopeName | undefined> = {
  [TokenScope.UNSPECIFIED]: undefined,
  [TokenScope.READ]: "read",
  [TokenScope.SUBMIT]: "submit",
  [TokenScope.RUNNER]: "runner",
  [TokenScope.ADMIN]: "admin",
};
const SCOPES: Record<ScopeName, TokenScope> = { read: TokenScope.READ, submit: TokenScope.SUBMIT, runner: TokenScope.RUNNER, admin: TokenScope.ADMIN };

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

export function tokenToProto(r: TokenRow): Token {
  return create(TokenSchema, {
    id: r.id,
    name: r.name,
    scopes: r.scopes.map((s) => SCOPES[s]),
    clusters: r.clusters,
    createdAt: timestampFromDate(r.created_at),
    expiresAt: r.expires_at ? timestampFromDate(r.expires_at) : undefined,
    revokedAt: r.revoked_at ? timestampFromDate(r.revoked_at) : undefined,
  });
}

/** Creates a token; answers the stored token and its secret, shown this once. */
export async function issueToken(
  sql: ServiceDeps["sql"],
  token: { name: string; scopes: readonly ScopeName[]; clusters: readonly string[]; expiresAt: Date | null },
): Promise<{ row: TokenRow; secret: string }> {
  const part = newSecretPart();
  const row = await createToken(sql, { ...token, secretHash: hashSecretPart(part) });
  return { row, secret: secretOf(row.id, part) };
}

export function tokenService({ sql, reads }: ServiceDeps): ServiceImpl<typeof TokenService> {
  return {
    async createToken(req) {
      checkName(req.name, "token name");
      if (req.scopes.length === 0) throw invalid("scopes is empty: give at least one of read, submit, runner, admin");
      const scopes = [
        ...new Set(
          req.scopes.map((s, i) => {
            const name = SCOPE_NAMES[s];
            if (!name) throw invalid(`scopes[${i}]: ${s} is not a scope; use READ, SUBMIT, RUNNER or ADMIN`);
            return name;
          }),
        ),
      ];
      const clusters = req.clusters.map((c, i) => checkSlug(c, `clusters[${i}]`));
      const expiresAt = req.expiresAt ? timestampDate(req.expiresAt) : null;
      if (expiresAt && !(expiresAt.getTime() > Date.now())) throw invalid("expires_at must be in the future");
      const { row, secret } = await issueToken(sql, { name: req.name, scopes, clusters, expiresAt });
      return { token: tokenToProto(row), secret };
    },

    async listTokens(req) {
      if (req.pageSize > MAX_PAGE_SIZE) throw invalid(`page_size is ${req.pageSize}; the limit is ${MAX_PAGE_SIZE}`);
      const limit = req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize;
      const beforeId = req.pageToken === "" ? null : parseId(req.pageToken, "page_token");
      const rows = await listTokens(reads, beforeId, limit);
      return { tokens: rows.map(tokenToProto), nextPageToken: rows.length === limit ? rows[rows.length - 1].id : "" };
    },

    async revokeToken(req) {
      const id = parseId(req.id, "id");
      const row = await revokeToken(sql, id);
      if (!row) throw notFound(`token ${id} does not exist`);
      return { token: tokenToProto(row) };
    },
  };
}
