import type * as http from "node:http";
import type * as http2 from "node:http2";
import type * as net from "node:net";
import { createServer } from "@httptoolkit/httpolyglot";

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export interface Listener {
  /** The address actually bound (port 0 picks a free one). */
  host: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish, then closes connections. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves HTTP/1.1 and cleartext HTTP/2 on one port. Node's `allowHTTP1` only
 * works with TLS (ALPN chooses), so httpolyglot inspects each new connection's
 * first bytes instead: the HTTP/2 connection preface goes to an HTTP/2 server,
 * anything else to an HTTP/1.1 server.
 */
export function listen(handler: Handler, host: string, port: number): Promise<Listener> {
  const server = createServer({ http2: {} }, handler as http.RequestListener);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  server.on("connection", (socket: net.Socket) => {
    // Small frames (a stream message, a result batch) must leave at once, not
    // wait for Nagle's algorithm to meet the peer's delayed ACK (~40 ms).
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (session: http2.Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address() as net.AddressInfo;
      resolve({
        host: address.address,
        port: address.port,
        close: (graceMs = 5_000) =>
          new Promise<void>((done) => {
            const force = setTimeout(() => sockets.forEach((s) => s.destroy()), graceMs);
            server.close(() => {
              clearTimeout(force);
              done();
            });
            // HTTP/2: GOAWAY, then close once open streams finish.
            for (const s of sessions) s.close();
            // HTTP/1.1: close keep-alive connections that carry no request.
            (server as unknown as { _httpServer?: http.Server })._httpServer?.closeIdleConnections();
          }),
      });
    });
  });
}
