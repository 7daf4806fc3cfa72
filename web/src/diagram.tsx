import type { TargetedKeyboardEvent } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { TASK_STATES } from "./format.js";
import { GraphLimits, type GraphLayout, type GraphNode, type GraphView, type TaskIndex, countsOf, layoutGraph, totalOf } from "./task-graph.js";

interface Props {
  index: TaskIndex;
  view: GraphView;
  onView: (view: GraphView) => void;
  selected: string | undefined;
  onSelect: (taskId: string) => void;
}

const ZOOMS = [0.5, 0.75, 1, 1.25];

function path(points: { x: number; y: number }[]): string {
  return points.map((p, i) => `${i === 0 ? "M" : "L"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A bar of state counts inside a node. */
function StateStrip({ node, counts }: { node: GraphNode; counts: ReturnType<typeof countsOf> }) {
  const total = totalOf(counts) || 1;
  const width = node.width - 16;
  let x = node.x + 8;
  return (
    <g>
      {TASK_STATES.map((s) => {
        if (counts[s] === 0) return null;
        const w = (counts[s] / total) * width;
        const rect = <rect key={s} class={`fill-${s}`} x={x} y={node.y + node.height - 14} width={Math.max(w, 1)} height={6} />;
        x += w;
        return rect;
      })}
    </g>
  );
}

/**
 * The task tree as an SVG diagram: a node per task (coloured by state),
 * groups for many siblings of one name, collapsed subtrees, and dependency
 * edges dashed. Every node is focusable and answers Enter and Space.
 */
export function TaskDiagram({ index, view, onView, selected, onSelect }: Props) {
  const [zoom, setZoom] = useState(1);
  // The layout depends on which tasks exist and on the view, not on their states:
  // a refresh that only changes states recolours the same layout.
  const graph: GraphLayout = useMemo(() => layoutGraph(index, view), [index.shape, view]);
  const selectedNode = selected ? graph.nodeOf.get(selected) : undefined;
  const scroller = useRef<HTMLDivElement>(null);
  // A wide tree starts scrolled to its first root (or the selected task), not to its left edge.
  const focusKey = selectedNode ?? graph.nodes[0]?.key;
  const scrolledFor = useRef<string | undefined>(undefined);
  useEffect(() => {
    const el = scroller.current;
    const node = graph.nodes.find((n) => n.key === focusKey);
    if (!el || !node || scrolledFor.current === focusKey) return;
    scrolledFor.current = focusKey;
    const x = (node.x + node.width / 2) * zoom;
    if (x < el.scrollLeft || x > el.scrollLeft + el.clientWidth) el.scrollLeft = Math.max(0, x - el.clientWidth / 2);
  }, [graph, focusKey, zoom]);

  // A selected task that is not drawn (in a group, or under a collapsed
  // task) is revealed one level per layout until its own node is drawn.
  useEffect(() => {
    if (!selected || !index.byId.has(selected)) return;
    const node = graph.nodes.find((n) => n.key === graph.nodeOf.get(selected));
    if (!node || node.taskId === selected) return;
    if (node.kind === "task") {
      const collapsed = new Set(view.collapsed);
      collapsed.delete(node.taskId!);
      onView({ ...view, collapsed, expanded: new Set(view.expanded).add(node.taskId!) });
      return;
    }
    const members = new Set(node.members);
    let member = selected;
    while (!members.has(member)) member = index.byId.get(member)!.parentId;
    const pages = Math.ceil((node.members!.indexOf(member) + 1) / GraphLimits.groupPage) * GraphLimits.groupPage;
    const shown = node.kind === "more" ? (view.openGroups.get(node.groupKey!) ?? 0) + pages : pages;
    onView({ ...view, openGroups: new Map(view.openGroups).set(node.groupKey!, shown) });
  }, [graph, selected]);

  const openGroup = (groupKey: string, more: boolean) => {
    const openGroups = new Map(view.openGroups);
    openGroups.set(groupKey, (more ? (openGroups.get(groupKey) ?? 0) : 0) + GraphLimits.groupPage);
    onView({ ...view, openGroups });
  };
  const activate = (n: GraphNode) => {
    if (n.kind === "task") onSelect(n.taskId!);
    else openGroup(n.groupKey!, n.kind === "more");
  };
  const onKey = (n: GraphNode) => (e: TargetedKeyboardEvent<SVGGElement>) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      activate(n);
    }
  };

  return (
    <div class="diagram">
      <div class="diagram-tools" role="group" aria-label="Diagram">
        <span class="legend" aria-hidden="true">
          {TASK_STATES.map((s) => (
            <span key={s} class="legend-item">
              <span class={`swatch fill-${s}`} /> {s}
            </span>
          ))}
          <span class="legend-item">
            <svg width="28" height="8" aria-hidden="true">
              <line x1="0" y1="4" x2="28" y2="4" class="edge-dependency" />
            </svg>
            depends on
          </span>
        </span>
        <span class="zoom">
          <button type="button" aria-label="Zoom out" disabled={zoom === ZOOMS[0]} onClick={() => setZoom(ZOOMS[Math.max(0, ZOOMS.indexOf(zoom) - 1)])}>
            −
          </button>
          <span aria-live="polite">{Math.round(zoom * 100)} %</span>
          <button
            type="button"
            aria-label="Zoom in"
            disabled={zoom === ZOOMS[ZOOMS.length - 1]}
            onClick={() => setZoom(ZOOMS[Math.min(ZOOMS.length - 1, ZOOMS.indexOf(zoom) + 1)])}
          >
            +
          </button>
        </span>
      </div>
      <div class="diagram-scroll" ref={scroller}>
        <svg
          class="task-graph"
          width={graph.width * zoom}
          height={graph.height * zoom}
          viewBox={`0 0 ${graph.width} ${graph.height}`}
          role="group"
          aria-label={`Task tree: ${graph.nodes.length} nodes for ${index.byId.size} tasks`}
        >
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M0,0 L10,5 L0,10 z" class="arrow-head" />
            </marker>
          </defs>
          <g>
            {graph.edges.map((e) => (
              <path key={e.key} d={path(e.points)} class={`edge edge-${e.kind}`} marker-end={e.kind === "dependency" ? "url(#arrow)" : undefined} />
            ))}
          </g>
          <g>
            {graph.nodes.map((n) => {
              if (n.kind === "task") {
                const task = index.byId.get(n.taskId!)!;
                const label = `Task ${task.label} #${task.id}, ${task.state}${n.hiddenBelow > 0 ? `, ${n.hiddenBelow} subtasks hidden` : ""}`;
                return (
                  <g
                    key={n.key}
                    class={`node node-task state-${task.state}${n.key === selectedNode ? " selected" : ""}`}
                    data-kind="task"
                    data-state={task.state}
                    data-task-id={task.id}
                    tabindex={0}
                    role="button"
                    aria-pressed={n.key === selectedNode}
                    aria-label={label}
                    onClick={() => activate(n)}
                    onKeyDown={onKey(n)}
                  >
                    <title>{label}</title>
                    <rect x={n.x} y={n.y} width={n.width} height={n.height} rx={6} class="node-box" />
                    <rect x={n.x} y={n.y} width={6} height={n.height} rx={2} class={`fill-${task.state}`} />
                    <text x={n.x + 14} y={n.y + 20} class="node-title">
                      {truncate(task.label, 20)}
                    </text>
                    <text x={n.x + 14} y={n.y + 37} class="node-sub">
                      #{task.id} · {task.state}
                      {n.hiddenBelow > 0 ? ` · +${n.hiddenBelow.toLocaleString()}` : ""}
                    </text>
                  </g>
                );
              }
              const counts = countsOf(index, n.members!);
              const total = totalOf(counts);
              const summary = TASK_STATES.filter((s) => counts[s] > 0)
                .map((s) => `${counts[s].toLocaleString()} ${s}`)
                .join(", ");
              const title = n.kind === "group" ? `${n.members!.length.toLocaleString()} × ${n.label}` : `${n.members!.length.toLocaleString()} more ${n.label}`;
              const label = `${title}: ${summary}. ${n.kind === "group" ? "Show them" : "Show more"}`;
              return (
                <g
                  key={n.key}
                  class={`node node-${n.kind}`}
                  data-kind={n.kind}
                  data-members={n.members!.length}
                  tabindex={0}
                  role="button"
                  aria-label={label}
                  onClick={() => activate(n)}
                  onKeyDown={onKey(n)}
                >
                  <title>{label}</title>
                  {n.kind === "group" && <rect x={n.x + 6} y={n.y - 6} width={n.width} height={n.height} rx={6} class="node-box node-stack" />}
                  <rect x={n.x} y={n.y} width={n.width} height={n.height} rx={6} class="node-box" />
                  <text x={n.x + 10} y={n.y + 19} class="node-title">
                    {truncate(title, 24)}
                  </text>
                  {n.kind === "group" && (
                    <text x={n.x + 10} y={n.y + 35} class="node-sub">
                      {total > n.members!.length ? `${total.toLocaleString()} tasks in all` : summary.slice(0, 30)}
                    </text>
                  )}
                  <StateStrip node={n} counts={counts} />
                </g>
              );
            })}
          </g>
        </svg>
      </div>
    </div>
  );
}
