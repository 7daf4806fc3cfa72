import type { Context, Span, SpanKind, Tracer } from "@opentelemetry/api";
import { importOptional } from "../sdk/optional.js";

/**
 * OpenTelemetry traces of Sluice: spans for submit, lease, execute and
 * complete, linked by W3C `traceparent` strings that travel with the tasks.
 * Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; then the SDK is loaded (once,
 * on `startTracing`) and spans go out over OTLP/HTTP in batches. Otherwise
 * nothing of the SDK is loaded and every caller checks `tracing()` (null)
 * before doing any tracing work.
 */

/** Whether this process exports traces (read once). */
export const TRACING_CONFIGURED = Boolean(process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);

/** A span being recorded, and its context as a traceparent for what it causes. */
export interface LiveSpan {
  readonly traceparent: string;
  setAttribute(key: string, value: string | number): void;
  /** Ends the span; with an error, its status is an error. */
  end(error?: Error): void;
}

/** What `startTracing` loaded. */
export interface Tracing {
  /** A span with `parent` (a traceparent) as its parent, or a new trace without one. */
  span(name: string, parent: string | undefined, kind: "client" | "server" | "internal" | "consumer"): LiveSpan;
  /** Exports what is pending and stops. */
  shutdown(): Promise<void>;
}

let loaded: Tracing | null = null;
let loading: Promise<Tracing | null> | null = null;

/** The tracing of this process once started; null when off (or not started yet). */
export function tracing(): Tracing | null {
  return loaded;
}

/**
 * Loads the OpenTelemetry SDK and its OTLP exporter when tracing is
 * configured, naming this process's service `serviceName` unless
 * OTEL_SERVICE_NAME says otherwise. Resolves with null when it is not.
 */
export function startTracing(serviceName: string): Promise<Tracing | null> {
  if (!TRACING_CONFIGURED) return Promise.resolve(null);
  // Without the SDK's packages (optional peers of the SDK) the process runs
  // untraced, and says so once.
  loading ??= load(serviceName).then(
    (t) => (loaded = t),
    (e: Error) => {
      console.warn(`sluice: OTEL_EXPORTER_OTLP_ENDPOINT is set, but traces are off: ${e.message}`);
      return null;
    },
  );
  return loading;
}

async function load(serviceName: string): Promise<Tracing> {
  const purpose = "tracing (OTEL_EXPORTER_OTLP_ENDPOINT)";
  const [api, core, base, exporterModule, resources] = await Promise.all([
    importOptional("@opentelemetry/api", () => import("@opentelemetry/api"), purpose),
    importOptional("@opentelemetry/core", () => import("@opentelemetry/core"), purpose),
    importOptional("@opentelemetry/sdk-trace-base", () => import("@opentelemetry/sdk-trace-base"), purpose),
    importOptional("@opentelemetry/exporter-trace-otlp-http", () => import("@opentelemetry/exporter-trace-otlp-http"), purpose),
    importOptional("@opentelemetry/resources", () => import("@opentelemetry/resources"), purpose),
  ]);
  const resource = resources
    .resourceFromAttributes({ "service.name": process.env.OTEL_SERVICE_NAME || serviceName })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new base.BasicTracerProvider({
    resource,
    spanProcessors: [new base.BatchSpanProcessor(new exporterModule.OTLPTraceExporter())],
  });
  const tracer: Tracer = provider.getTracer("sluice");
  const propagator = new core.W3CTraceContextPropagator();
  const kinds: Record<string, SpanKind> = {
    client: api.SpanKind.CLIENT,
    server: api.SpanKind.SERVER,
    internal: api.SpanKind.INTERNAL,
    consumer: api.SpanKind.CONSUMER,
  };
  const contextOf = (traceparent: string | undefined): Context =>
    traceparent ? propagator.extract(api.ROOT_CONTEXT, { traceparent }, api.defaultTextMapGetter) : api.ROOT_CONTEXT;
  const traceparentOf = (span: Span): string => {
    const carrier: Record<string, string> = {};
    propagator.inject(api.trace.setSpan(api.ROOT_CONTEXT, span), carrier, api.defaultTextMapSetter);
    return carrier.traceparent ?? "";
  };
  return {
    span(name, parent, kind) {
      const span = tracer.startSpan(name, { kind: kinds[kind] }, contextOf(parent));
      return {
        traceparent: traceparentOf(span),
        setAttribute: (key, value) => void span.setAttribute(key, value),
        end(error) {
          if (error) {
            span.recordException(error);
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message });
          }
          span.end();
        },
      };
    },
    shutdown: () => provider.shutdown(),
  };
}

/** Exports the spans still pending and stops tracing (a process about to exit calls it). */
export async function shutdownTracing(): Promise<void> {
  const t = loaded;
  loaded = null;
  loading = null;
  await t?.shutdown();
}
