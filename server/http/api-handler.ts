import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type Interceptor, createConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import {
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Admission } from "./admission.js";

type NodeServerRequest = Parameters<typeof universalRequestFromNodeRequest>[0];
type NodeServerResponse = Parameters<typeof universalResponseToNodeResponse>[1];

export interface ApiHandlerOptions {
  routes(router: ConnectRouter): void;
  interceptors: Interceptor[];
  /** How JSON requests are read (see the router's options). */
  jsonOptions?: Parameters<typeof createConnectRouter>[0] extends infer O ? (O extends { jsonOptions?: infer J } ? J : never) : never;
  /** The largest request message accepted, in bytes. */
  maxRequestBytes: number;
  /** How the size limit is set, for the error that names it. */
  maxRequestBytesSetting: string;
  /** Requests of the methods `admitted` accepts wait here for a turn. */
  admission: Admission;
  admitted(method: DescMethod): boolean;
}

/**
 * The API as a Node request handler: Connect's `connectNodeAdapter`, plus a
 * turn from `admission` before a request is handled and a size limit whose
 * error names the setting that raises it (Connect's own says
 * "readMaxBytes", which no user can find).
 */
export function apiHandler(options: ApiHandlerOptions): (req: NodeServerRequest, res: NodeServerResponse) => void {
  const router = createConnectRouter({
    interceptors: options.interceptors,
    // Connect still checks messages after decompression against this.
    readMaxBytes: options.maxRequestBytes,
    jsonOptions: options.jsonOptions,
    // Not brotli: a client asking only for it made a large answer cost the
    // server seconds of CPU; every client also takes gzip.
    acceptCompression: [compressionGzip],
  });
  options.routes(router);
  const paths = new Map<string, { handler: UniversalHandler; admitted: boolean }>();
  for (const handler of router.handlers) paths.set(handler.requestPath, { handler, admitted: options.admitted(handler.method) });
  const tooLarge = (bytes: number) =>
    new ConnectError(
      `the request message is ${bytes} bytes or more; the limit is ${options.maxRequestBytes} bytes (${options.maxRequestBytesSetting}): send fewer items per call`,
      Code.ResourceExhausted,
    );

  const serve = (route: { handler: UniversalHandler }, req: NodeServerRequest, res: NodeServerResponse, done: () => void) => {
    // The turn ends when the response does, answered or abandoned. (Not when
    // universalResponseToNodeResponse settles: it waits for an "end" event
    // that an HTTP/2 response never emits.)
    res.once("close", done);
    let uReq;
    try {
      uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    } catch (e) {
      res.writeHead(400);
      res.end(String((e as Error).message));
      return;
    }
    // The body is counted below; Connect would refuse a large Content-Length
    // with its own message first.
    const contentLength = Number(uReq.header.get("content-length") ?? NaN);
    uReq.header.delete("content-length");
    const enveloped = /^application\/(grpc|connect\+)/.test(uReq.header.get("content-type") ?? "");
    uReq.body = limitBody(uReq.body as AsyncIterable<Uint8Array>, enveloped, options.maxRequestBytes, contentLength, tooLarge);
    route
      .handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        console.error(`handler for rpc ${route.handler.method.name} of ${route.handler.service.typeName} failed`, reason);
      });
  };

  return (req, res) => {
    const route = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (!route) {
      res.writeHead(404);
      res.end();
      return;
    }
    if (!route.admitted) {
      serve(route, req, res, () => {});
      return;
    }
    options.admission.enter(
      (done) => serve(route, req, res, done),
      (leave) => res.once("close", leave),
    );
  };
}

/**
 * The request body, failing with `tooLarge` as soon as a message is known to
 * be over `max` bytes: for enveloped protocols (gRPC, gRPC-Web, Connect
 * streams) from each message's 5-byte prefix, before its bytes are read; for
 * a Connect unary call, the whole body is the message.
 */
async function* limitBody(
  body: AsyncIterable<Uint8Array>,
  enveloped: boolean,
  max: number,
  contentLength: number,
  tooLarge: (bytes: number) => ConnectError,
): AsyncIterable<Uint8Array> {
  if (!enveloped && contentLength > max) throw tooLarge(contentLength);
  let total = 0;
  // Enveloped: bytes of the current message still to come, and the prefix read so far.
  let remaining = 0;
  const prefix = new Uint8Array(5);
  let prefixRead = 0;
  for await (const chunk of body) {
    if (!enveloped) {
      total += chunk.byteLength;
      if (total > max) throw tooLarge(total);
      yield chunk;
      continue;
    }
    let pos = 0;
    while (pos < chunk.byteLength) {
      if (remaining > 0) {
        const take = Math.min(remaining, chunk.byteLength - pos);
        remaining -= take;
        pos += take;
        continue;
      }
      prefix[prefixRead++] = chunk[pos++];
      if (prefixRead === 5) {
        prefixRead = 0;
        remaining = new DataView(prefix.buffer).getUint32(1);
        if (remaining > max) throw tooLarge(remaining);
      }
    }
    yield chunk;
  }
}
