import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, type Client as ConnectClient } from "@connectrpc/connect";
import type { RunnerService, SessionResponse, SessionStartSchema } from "../../gen/sluice/v1/runner_service_pb.js";
import { SessionChannel } from "../../runner/worker/session.js";
import { EventQueue } from "../../server/dispatch/event-queue.js";

type Event = SessionResponse["event"];
type Kind = NonNullable<Event["case"]>;

/**
 * A runner's session driven by hand, for tests of the protocol: events other
 * than answers are read one at a time; `record` and `extend` wait for their
 * answers as a runner does.
 */
export function openSession(api: ConnectClient<typeof RunnerService>, start: MessageInitShape<typeof SessionStartSchema>) {
  const runnerId = start.runnerId ?? crypto.randomUUID();
  const channel = new SessionChannel({ ...start, runnerId });
  const abort = new AbortController();
  const events = new EventQueue<Event>();
  /** How the call ended: undefined when the server ended it normally. */
  const ended = (async (): Promise<ConnectError | undefined> => {
    try {
      for await (const res of api.session(channel.requests(), { signal: abort.signal })) {
        if (res.event.case === "recorded" || res.event.case === "extended") channel.answered(res.event);
        else events.push(res.event);
      }
      return undefined;
    } catch (e) {
      return ConnectError.from(e);
    } finally {
      channel.end();
      events.close();
    }
  })();
  const next = async (): Promise<Event> => {
    const r = await events.next();
    if (r.done) throw new Error(`the session ended: ${(await ended)?.message ?? "by the server"}`);
    return r.value;
  };
  /** Reads until an event of this kind. */
  const until = async <K extends Kind>(kind: K) => {
    for (;;) {
      const e = await next();
      if (e.case === kind) return e.value as Extract<Event, { case: K }>["value"];
    }
  };
  return {
    runnerId,
    next,
    until,
    ended,
    record: channel.record.bind(channel),
    extend: channel.extend.bind(channel),
    drain: () => channel.drain(),
    /** Ends the runner's side; the server ends the call after releasing what is leased to it. */
    finish: () => channel.finish(),
    /** Breaks the call off, as a runner that lost its connection. */
    close: () => abort.abort(),
  };
}

/**
 * Reports results on a session of its own, as a runner that held those tasks
 * once would (it registers a task nobody submits, so it is leased nothing).
 */
export async function reportOnSession(
  api: ConnectClient<typeof RunnerService>,
  results: Parameters<SessionChannel["record"]>[0],
  runnerId: string = crypto.randomUUID(),
) {
  const session = openSession(api, { runnerId, tasks: [{ name: "NothingSubmitted", version: "v1.0" }], concurrency: 1, prefetch: 0 });
  try {
    return await session.record(results);
  } finally {
    session.finish();
    await session.ended;
  }
}
