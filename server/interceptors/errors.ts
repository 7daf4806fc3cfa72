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
    const it = res.message[Symbol.asyncIterator]();
    // Every promise of the stream has a handler: when the caller went away
    // while the handler was awaiting (a query failing as the database
    // dropped its connection), the framework may leave a pending message's
    // promise behind, and its rejection then has no audience. Callers still
    // waiting get the error as usual.
    const handled = <T>(p: Promise<T>): Promise<T> => {
      const q = p.catch((e: unknown) => {
        throw convert(where, e);
      });
      q.catch(() => {});
      return q;
    };
    return {
      ...res,
      message: {
        [Symbol.asyncIterator]: () => ({
          next: () => handled(it.next()),
          return: (value?: unknown) => handled(it.return ? it.return(value) : Promise.resolve({ done: true as const, value: undefined })),
          throw: (e?: unknown) => handled(it.throw ? it.throw(e) : Promise.reject(e)),
        }),
      },
    };
  };
}
