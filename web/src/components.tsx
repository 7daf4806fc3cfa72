import type { ComponentChildren } from "preact";
import type { TaskCounts } from "../../gen/sluice/v1/job_pb.js";
import { TASK_STATES } from "./format.js";

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state}`}>{state}</span>;
}

/** A bar split by task state, with the numbers for screen readers and on hover. */
export function CountsBar({ counts }: { counts: TaskCounts | Record<string, number> | undefined }) {
  if (!counts) return null;
  const values = TASK_STATES.map((s) => [s, Number((counts as unknown as Record<string, number>)[s] ?? 0)] as const);
  const total = values.reduce((n, [, v]) => n + v, 0);
  const label = values
    .filter(([, v]) => v > 0)
    .map(([s, v]) => `${v.toLocaleString()} ${s}`)
    .join(", ");
  return (
    <span class="counts" title={label} aria-label={`${total.toLocaleString()} tasks: ${label || "none"}`} role="img">
      <span class="counts-bar">
        {values.map(([s, v]) => (v > 0 ? <span key={s} class={`fill-${s}`} style={{ flexGrow: v }} /> : null))}
      </span>
      <span class="counts-total">{total.toLocaleString()}</span>
    </span>
  );
}

export function ErrorNote({ error }: { error: string | undefined }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

export function PageHeader({ title, children }: { title: ComponentChildren; children?: ComponentChildren }) {
  return (
    <div class="page-header">
      <h1>{title}</h1>
      <div class="page-actions">{children}</div>
    </div>
  );
}

export function LiveToggle({ live, onChange, loadedAt }: { live: boolean; onChange: (v: boolean) => void; loadedAt?: Date }) {
  return (
    <label class="live" title={loadedAt ? `updated ${loadedAt.toLocaleTimeString()}` : undefined}>
      <input type="checkbox" checked={live} onChange={(e) => onChange(e.currentTarget.checked)} /> Live
    </label>
  );
}
