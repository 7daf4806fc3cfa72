import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { isDatabaseUnavailable } from "../store/unavailable.js";

/** Where the errors interceptor logs what it hides from callers. */
export interface ErrorLogger {
  error(message: string, error?: unknown): void;
}

/**
 * An error as it may cross the wire: a ConnectError as it is; the database
 * being unreachable (a terminated connection, a server restarting or failing
 * over) as Unavailable, which clients retry; anything else as Internal,
 * without internals.
 */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (isDatabaseUnavailable(e)) {
    return new ConnectError(`the database is unavailable right now (${(e as Error).message}); try again`, Code.Unavailable);
  }
  return new ConnectError(`internal error: ${(e as Error)?.message ?? String(e)}`, Code.Internal);
}

/**
 * Lets only ConnectErrors cross the wire (see `toConnectError`), for unary calls
 * and for errors raised while a stream's messages are produced; internal errors
 * are logged here with their stack.
 */
export function errorsInterceptor(logger: ErrorLogger): Interceptor {
  const convert = (where: string, e: unknown): ConnectError => {
    const out = toConnectError(e);
    if (out.code === Code.Internal && out !== e) logger.error(`${where} failed`, e);
    return out;
  };
  return (next) => async (req) => {
    const where = `${req.method.parent.typeName}/${req.method.name}`;
    let res;
    try {
      res = await next(req);
    } catch (e) {
      throw convert(where, e);
    }
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (e) {
          throw convert(where, e);
        }
      })(),
    };
  };
}
