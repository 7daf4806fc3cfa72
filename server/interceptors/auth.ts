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
        let revoked: ConnectError | undefined;
        /** Fails the wait for the next message, if one is waited for. */
        let interrupt: ((e: ConnectError) => void) | undefined;
        const unwatch = auth.watch(principal.tokenId, () => {
          revoked = new ConnectError(`token ${principal.tokenId} was revoked`, Code.Unauthenticated);
          interrupt?.(revoked);
        });
        const it = messages[Symbol.asyncIterator]();
        try {
          for (;;) {
            if (revoked) throw revoked;
            // One promise per message, settled by the message or by the
            // revocation. Racing each message against one promise of the
            // whole stream (Promise.race) would leave a reaction on it per
            // message, each holding its message until the stream ends.
            const r = await new Promise<Awaited<ReturnType<typeof it.next>>>((resolve, reject) => {
              interrupt = reject;
              it.next().then(resolve, reject);
            });
            interrupt = undefined;
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
