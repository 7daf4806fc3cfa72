import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { type UniversalHandler, type UniversalServerResponse, createAsyncIterable, readAllBytes } from "@connectrpc/connect/protocol";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";

/*
 * Two corrections to errors as Connect-ES writes them.
 *
 * A request body that is not a protobuf message is the caller's error, but
 * Connect-ES reports it as "parse binary: ..." with code Internal (its JSON
 * parse errors are InvalidArgument). Streams read their messages inside the
 * interceptors, where `parseErrors` corrects the code; a unary request is
 * parsed before any interceptor runs, so its response is corrected on the
 * way out, for each protocol.
 *
 * The gRPC spec percent-encodes only bytes outside printable ASCII, and "%",
 * in grpc-message; Connect-ES encodes as encodeURIComponent does ("," and
 * ":" included), and grpc-js decodes only what decodeURI decodes, so its
 * users read "%2C" and "%3A". The message is encoded again as the spec says.
 */

const PARSE_ERROR = "parse binary: ";

function isParseError(code: Code | number, message: string): boolean {
  return code === Code.Internal && message.startsWith(PARSE_ERROR);
}

/** The message for a request body that is not the method's input message. */
function parseRefusal(typeName: string, message: string): string {
  return `the request is not a valid ${typeName} in the protobuf binary format (${message.slice(PARSE_ERROR.length)}); send the message the method takes`;
}

/** Corrects the code of parse errors of streamed request messages. */
export function parseErrors(): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) return next(req);
    const typeName = req.method.input.typeName;
    const messages = req.message;
    async function* corrected() {
      try {
        yield* messages;
      } catch (e) {
        if (e instanceof ConnectError && isParseError(e.code, e.rawMessage)) {
          throw new ConnectError(parseRefusal(typeName, e.rawMessage), Code.InvalidArgument);
        }
        throw e;
      }
    }
    return next({ ...req, message: corrected() });
  };
}

/** `text` percent-encoded as the gRPC spec asks of grpc-message. */
export function encodeGrpcMessage(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

const correctedTrailers = new WeakSet<Headers>();

/** Corrects grpc-status and grpc-message in a gRPC or gRPC-web trailer. */
function correctTrailer(trailer: Headers, typeName: string): void {
  if (correctedTrailers.has(trailer)) return;
  correctedTrailers.add(trailer);
  const status = trailer.get("grpc-status");
  const encoded = trailer.get("grpc-message");
  if (status === null || status === "0" || encoded === null) return;
  let message: string;
  try {
    message = decodeURIComponent(encoded);
  } catch {
    return;
  }
  if (isParseError(Number(status), message)) {
    trailer.set("grpc-status", String(Code.InvalidArgument));
    message = parseRefusal(typeName, message);
  }
  trailer.set("grpc-message", encodeGrpcMessage(message));
}

/** A gRPC response: its trailer is read once its body has been written, when it holds the status. */
function correctGrpc(res: UniversalServerResponse, typeName: string): UniversalServerResponse {
  const trailer = res.trailer;
  if (!(trailer instanceof Headers)) return res;
  return {
    ...res,
    get trailer() {
      correctTrailer(trailer, typeName);
      return trailer;
    },
  };
}

/** A gRPC-web response: the status is in a trailer envelope (flag 0x80) at the end of the body. */
function correctGrpcWeb(res: UniversalServerResponse, typeName: string): UniversalServerResponse {
  const body = res.body;
  if (body === undefined || !(Symbol.asyncIterator in Object(body))) return res;
  async function* corrected() {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      const length = chunk.length >= 5 ? new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(1) : -1;
      if (chunk[0] !== trailerFlag || length !== chunk.length - 5) {
        yield chunk;
        continue;
      }
      const trailer = trailerParse(chunk.subarray(5));
      correctTrailer(trailer, typeName);
      const data = trailerSerialize(trailer);
      const envelope = new Uint8Array(5 + data.length);
      envelope[0] = trailerFlag;
      new DataView(envelope.buffer).setUint32(1, data.length);
      envelope.set(data, 5);
      yield envelope;
    }
  }
  return { ...res, body: corrected() };
}

/** A Connect unary error: a JSON body with the code, and the HTTP status for it. */
async function correctConnectUnary(res: UniversalServerResponse, typeName: string): Promise<UniversalServerResponse> {
  if (res.status !== 500) return res;
  const header = new Headers(res.header);
  if (header.get("content-type") !== "application/json" || header.has("content-encoding")) return res;
  if (res.body === undefined || !(Symbol.asyncIterator in Object(res.body))) return res;
  const bytes = await readAllBytes(res.body as AsyncIterable<Uint8Array>, Number.MAX_SAFE_INTEGER);
  let error: { code?: unknown; message?: unknown } = {};
  try {
    error = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // Not an error body: sent on unchanged.
  }
  if (error.code !== "internal" || typeof error.message !== "string" || !isParseError(Code.Internal, error.message)) {
    return { ...res, body: createAsyncIterable([bytes]) };
  }
  const body = new TextEncoder().encode(JSON.stringify({ code: "invalid_argument", message: parseRefusal(typeName, error.message) }));
  header.set("content-length", String(body.length));
  return { ...res, status: 400, header, body: createAsyncIterable([body]) };
}

function corrected(handler: UniversalHandler): UniversalHandler {
  const typeName = handler.method.input.typeName;
  const unary = handler.method.methodKind === "unary";
  const fn = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const res = await handler(req);
    const type = (res.header instanceof Headers ? res.header : new Headers(res.header)).get("content-type") ?? "";
    if (type.startsWith("application/grpc-web")) return correctGrpcWeb(res, typeName);
    if (type.startsWith("application/grpc")) return correctGrpc(res, typeName);
    return unary ? correctConnectUnary(res, typeName) : res;
  };
  return Object.assign(fn, handler);
}

/**
 * Replaces the router's handlers with ones that correct their errors (see
 * above). Call it last in `routes`: the adapter takes the handlers after.
 */
export function correctProtocolErrors(router: ConnectRouter): void {
  const handlers = router.handlers;
  for (let i = 0; i < handlers.length; i++) handlers[i] = corrected(handlers[i]);
}
