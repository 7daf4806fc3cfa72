import { readFile } from "node:fs/promises";
import * as http2 from "node:http2";
import type * as net from "node:net";
import type { ConnectionLimits } from "../limits.js";
import { type Handler, type Listener, closeWhenIdle, startListening } from "./listen.js";

/** Files of the server's certificate, and of the CA whose client certificates it accepts. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (runners, say). */
  clientCaFile?: string;
}

/**
 * Serves HTTP/2 and HTTP/1.1 over TLS on one port: ALPN chooses (Node's
 * `allowHTTP1`), so no connection needs sniffing. The same limits as the
 * cleartext listener apply: a handshake that does not finish in the
 * first-bytes time, idle sessions and connections beyond the cap are closed.
 */
export async function listenTls(handler: Handler, host: string, port: number, limits: ConnectionLimits, files: TlsFiles): Promise<Listener> {
  const [cert, key, ca] = await Promise.all([
    readFile(files.certFile),
    readFile(files.keyFile),
    files.clientCaFile ? readFile(files.clientCaFile) : Promise.resolve(undefined),
  ]);
  const server = http2.createSecureServer(
    {
      cert,
      key,
      ...(ca ? { ca, requestCert: true, rejectUnauthorized: true } : {}),
      allowHTTP1: true,
      handshakeTimeout: limits.firstBytesTimeoutMs,
      settings: { maxConcurrentStreams: limits.maxStreamsPerConnection },
    },
    handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  server.maxConnections = limits.maxConnections;
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  server.on("connection", (socket: net.Socket) => {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, limits.tcpKeepAliveMs);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (session: http2.Http2Session) => {
    sessions.add(session);
    closeWhenIdle(session, limits.idleTimeoutMs);
    session.once("close", () => sessions.delete(session));
  });
  return startListening(server, host, port, sockets, sessions);
}
