import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** Tries of a read answered Unavailable, and the first pause between them (doubled each time). */
const ATTEMPTS = 5;
const FIRST_DELAY_MS = 100;

/**
 * Calls that change nothing (Get*, List*) are tried again when the server
 * answers Unavailable (its database restarting, failing over, or dropping a
 * connection): the answer of a later try is as good as the first.
 */
export const retryReads: Interceptor = (next) => async (req) => {
  if (req.stream || !/^(Get|List)/.test(req.method.name)) return next(req);
  for (let attempt = 1, delay = FIRST_DELAY_MS; ; attempt++, delay *= 2) {
    try {
      return await next(req);
    } catch (e) {
      if (attempt >= ATTEMPTS || req.signal.aborted || ConnectError.from(e).code !== Code.Unavailable) throw e;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
};
