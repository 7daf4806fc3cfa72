import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { ConnectError } from "@connectrpc/connect";
import type { Authenticator } from "../auth/authenticator.js";
import { allows } from "../auth/scopes.js";
import type { ServerMetrics } from "../observe/metrics.js";

/**
 * GET /metrics: the server's Prometheus metrics in the text format. With an
 * authenticator, the caller needs a token with the read scope (Prometheus
 * sends one with `authorization: { credentials: ... }` in its scrape config).
 */
export function metricsHandler(metrics: ServerMetrics, auth: Authenticator | undefined) {
  return async (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): Promise<void> => {
    const send = (status: number, body: string, type = "text/plain; charset=utf-8") => {
      (res as ServerResponse).writeHead(status, { "content-type": type });
      res.end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "use GET /metrics\n");
    if (auth) {
      try {
        const principal = await auth.verify(req.headers.authorization ?? null);
        if (!allows(principal.scopes, "read")) return send(403, `/metrics needs a token with the read scope; this one has ${principal.scopes.join(", ")}\n`);
      } catch (e) {
        return send(401, `${ConnectError.from(e).rawMessage}\n`);
      }
    }
    try {
      send(200, await metrics.text(), metrics.contentType);
    } catch (e) {
      send(503, `metrics are not available now: ${(e as Error).message}\n`);
    }
  };
}
