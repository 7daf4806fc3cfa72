import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { type ConnectionLimits, ConnectionLimitsDefaults } from "../limits.js";

export type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export interface Listener {
  /** The address actually bound (port 0 picks a free one). */
  host: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish, then closes connections. */
  close(graceMs?: number): Promise<void>;
}

/** What every cleartext HTTP/2 connection starts with (RFC 9113, section 3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Serves HTTP/1.1 and cleartext HTTP/2 on one port. Node's `allowHTTP1` only
 * works with TLS (ALPN chooses), so each new connection's first bytes are read
 * here: the HTTP/2 connection preface hands the socket to an HTTP/2 server,
 * anything else to an HTTP/1.1 server. The bytes read are put back first, and
 * the socket keeps its native handle: HTTP/2 frames are then written by
 * nghttp2 straight to the socket. (httpolyglot, used before, hides the handle
 * so that it can take any stream, and every frame then went through Node's
 * JavaScript stream wrapper: a tenth of the server's CPU time in the drain.)
 */
export function listen(handler: Handler, host: string, port: number, limits: ConnectionLimits = ConnectionLimitsDefaults): Promise<Listener> {
  const h1 = http.createServer(handler as http.RequestListener);
  h1.keepAliveTimeout = limits.idleTimeoutMs;
  // h1 never listens itself (it is handed sockets), and Node starts tracking
  // an HTTP server's connections on "listening": without that list,
  // closeIdleConnections finds nothing and an idle keep-alive client (a
  // browser, a metrics scraper) held every shutdown for the whole grace period.
  h1.emit("listening");
  const h2 = http2.createServer(
    { settings: { maxConcurrentStreams: limits.maxStreamsPerConnection } },
    handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const sockets = new Set<net.Socket>();
  /** Connections that have not yet sent enough to tell HTTP/2 from HTTP/1.1. */
  const undecided = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session: http2.Http2Session) => {
    sessions.add(session);
    closeWhenIdle(session, limits.idleTimeoutMs);
    session.once("close", () => sessions.delete(session));
  });

  const server = net.createServer((socket) => {
    // Small frames (a stream message, a result batch) must leave at once, not
    // wait for Nagle's algorithm to meet the peer's delayed ACK (~40 ms).
    socket.setNoDelay(true);
    socket.setKeepAlive(true, limits.tcpKeepAliveMs);
    sockets.add(socket);
    undecided.add(socket);
    // A connection that never says what it is would hold a descriptor for good.
    const silent = setTimeout(() => socket.destroy(), limits.firstBytesTimeoutMs);
    socket.once("close", () => {
      clearTimeout(silent);
      sockets.delete(socket);
      undecided.delete(socket);
    });
    sniff(socket, (isHttp2) => {
      clearTimeout(silent);
      undecided.delete(socket);
      (isHttp2 ? h2 : h1).emit("connection", socket);
    });
  });

  // Over the limit, Node closes a new connection at once: the client sees it
  // closed (Unavailable) instead of waiting, and the server keeps descriptors
  // for its database pool and files.
  server.maxConnections = limits.maxConnections;

  return startListening(server, host, port, sockets, sessions, () => {
    // HTTP/1.1: close keep-alive connections that carry no request, and stop
    // the timer that checks requests' timeouts.
    h1.close(() => {});
    // Connections that never sent a request.
    for (const s of undecided) s.destroy();
  });
}

/**
 * Listens, and resolves with a Listener whose `close` stops accepting, sends
 * every HTTP/2 session a GOAWAY (open streams finish), runs `closeMore`, and
 * destroys what is still open after the grace period.
 */
export function startListening(
  server: net.Server,
  host: string,
  port: number,
  sockets: ReadonlySet<net.Socket>,
  sessions: ReadonlySet<http2.Http2Session>,
  closeMore: () => void = () => {},
): Promise<Listener> {
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
            for (const s of sessions) s.close();
            closeMore();
          }),
      });
    });
  });
}

/**
 * Closes an HTTP/2 session (GOAWAY, so the client opens a new one for its
 * next call) once it has had no open stream for `idleMs`. Streams in
 * progress, however quiet, keep it open.
 */
export function closeWhenIdle(session: http2.Http2Session, idleMs: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | null = null;
  const arm = () => {
    timer = setTimeout(() => session.close(), idleMs);
    timer.unref();
  };
  arm();
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    stream.once("close", () => {
      if (--open === 0 && !session.closed && !session.destroyed) arm();
    });
  });
  session.once("close", () => {
    if (timer) clearTimeout(timer);
  });
}

/**
 * Reads a new connection's first bytes until they either are the HTTP/2
 * preface or cannot be, puts them back, and says which it was.
 */
function sniff(socket: net.Socket, decided: (isHttp2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const onError = () => socket.destroy();
  const onReadable = () => {
    for (let chunk: Buffer | null; (chunk = socket.read()) !== null; ) seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const couldBe = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (couldBe && seen.length < PREFACE.length) return;
    socket.off("readable", onReadable);
    socket.off("error", onError);
    if (seen.length > 0) socket.unshift(seen);
    decided(couldBe);
  };
  socket.on("error", onError);
  socket.on("readable", onReadable);
}
