import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Authenticator } from "../auth/authenticator.js";
import { principalKey } from "../auth/authenticator.js";
import { allows, requiredScope } from "../auth/scopes.js";

/**
 * Authenticates every call by its bearer token and checks that the token's
 * scopes allow the method (see auth/scopes.ts): no or a bad token is
 * Unauthenticated, a token without the scope PermissionDenied naming it.
 * Streams end with Unauthenticated when their token is revoked.
 */
export function authInterceptor(auth: Authenticator, openReflection: boolean): Interceptor {
  return (next) => async (req) => {
    const needed = requiredScope(req.method, openReflection);
    if (needed === null) return next(req);
    const principal = await auth.verify(req.header.get("authorization"));
    if (!allows(principal.scopes, needed)) {
      throw new ConnectError(
        `${req.method.parent.typeName}/${req.method.name} needs a token with the ${needed} scope; this one has ${principal.scopes.join(", ")}`,
        Code.PermissionDenied,
      );
    }
    req.contextValues.set(principalKey, principal);
    const res = await next(req);
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        let revoke!: (e: ConnectError) => void;
        const revoked = new Promise<never>((_, reject) => (revoke = reject));
        revoked.catch(() => {});
        const unwatch = auth.watch(principal.tokenId, () => revoke(new ConnectError(`token ${principal.tokenId} was revoked`, Code.Unauthenticated)));
        const it = messages[Symbol.asyncIterator]();
        try {
          for (;;) {
            const r = await Promise.race([it.next(), revoked]);
            if (r.done) return;
            yield r.value;
          }
        } finally {
          unwatch();
          void it.return?.();
        }
      })(),
    };
  };
}
