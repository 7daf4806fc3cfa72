import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";

/**
 * grpc.health.v1: the server as a whole ("") and each service it hosts are
 * SERVING until shutdown begins, then NOT_SERVING, so load balancers drain it.
 */
export class HealthState {
  private serving = true;
  private readonly watchers = new Set<() => void>();

  constructor(private readonly services: readonly string[]) {}

  shutDown(): void {
    this.serving = false;
    for (const w of this.watchers) w();
  }

  status(service: string): Status | undefined {
    if (service !== "" && !this.services.includes(service)) return undefined;
    return this.serving ? Status.SERVING : Status.NOT_SERVING;
  }

  service(): ServiceImpl<typeof Health> {
    const state = this;
    return {
      check(req) {
        const status = state.status(req.service);
        if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
        return { status };
      },
      list() {
        const statuses: Record<string, { status: Status }> = {};
        for (const s of ["", ...state.services]) statuses[s] = { status: state.status(s)! };
        return { statuses };
      },
      async *watch(req, ctx) {
        let last: Status | undefined;
        while (!ctx.signal.aborted) {
          const status = state.status(req.service) ?? Status.SERVICE_UNKNOWN;
          if (status !== last) yield { status };
          last = status;
          if (status === Status.NOT_SERVING) return;
          await new Promise<void>((resolve) => {
            const done = () => {
              state.watchers.delete(done);
              ctx.signal.removeEventListener("abort", done);
              resolve();
            };
            state.watchers.add(done);
            ctx.signal.addEventListener("abort", done, { once: true });
          });
        }
      },
    };
  }
}
