import { Graph, layout } from "@dagrejs/dagre";
import { TASK_STATES, type TaskStateName } from "./format.js";

/** What the diagram needs of a task. */
export interface GraphTask {
  id: string;
  parentId: string;
  dependsOn: string[];
  state: TaskStateName;
  /** The display name, or the identifier's name. */
  label: string;
}

export type StateCounts = Record<TaskStateName, number>;

const emptyCounts = (): StateCounts => ({ queued: 0, running: 0, computed: 0, failed: 0, cancelled: 0 });

/** A job's tasks indexed for drawing: children per parent and counts per subtree. */
export interface TaskIndex {
  byId: Map<string, GraphTask>;
  /** Children of each task in creation order; "" holds the root tasks. */
  children: Map<string, string[]>;
  /** Each task's own state and its descendants', counted. */
  subtree: Map<string, StateCounts>;
  /** Changes when a task is added (states may change without a new layout). */
  shape: string;
}

export function indexTasks(tasks: readonly GraphTask[]): TaskIndex {
  const byId = new Map<string, GraphTask>();
  const children = new Map<string, string[]>([["", []]]);
  for (const t of tasks) byId.set(t.id, t);
  for (const t of tasks) {
    const parent = t.parentId !== "" && byId.has(t.parentId) ? t.parentId : "";
    let list = children.get(parent);
    if (!list) children.set(parent, (list = []));
    list.push(t.id);
  }
  // Tasks come in creation order, so every child follows its parent:
  // walking backwards adds each subtree into its parent once.
  const subtree = new Map<string, StateCounts>();
  for (let i = tasks.length - 1; i >= 0; i--) {
    const t = tasks[i];
    const own = subtree.get(t.id) ?? emptyCounts();
    own[t.state]++;
    subtree.set(t.id, own);
    if (t.parentId !== "" && byId.has(t.parentId)) {
      const parent = subtree.get(t.parentId) ?? emptyCounts();
      for (const s of TASK_STATES) parent[s] += own[s];
      subtree.set(t.parentId, parent);
    }
  }
  const last = tasks.length > 0 ? tasks[tasks.length - 1].id : "";
  return { byId, children, subtree, shape: `${tasks.length}:${last}` };
}

export function totalOf(c: StateCounts): number {
  return c.queued + c.running + c.computed + c.failed + c.cancelled;
}

/** What the user opened and closed. */
export interface GraphView {
  /** Sibling groups shown task by task, with how many of their members to show. */
  openGroups: ReadonlyMap<string, number>;
  /** Tasks whose subtasks are hidden. */
  collapsed: ReadonlySet<string>;
  /** Tasks whose subtasks are shown even past the node budget. */
  expanded: ReadonlySet<string>;
}

export const emptyView = (): GraphView => ({ openGroups: new Map(), collapsed: new Set(), expanded: new Set() });

export const GraphLimits = {
  /** Siblings beyond this many are drawn as one node per task name. */
  groupAbove: 8,
  /** Members of an opened group shown at first, and added by each "more". */
  groupPage: 25,
  /** Past this many nodes, subtrees not opened by the user start collapsed. */
  nodeBudget: 150,
};

export type NodeKind = "task" | "group" | "more";

export interface GraphNode {
  key: string;
  kind: NodeKind;
  /** For a task node: its id. */
  taskId?: string;
  /** For group and more nodes: the group's key and the tasks they stand for. */
  groupKey?: string;
  members?: string[];
  label: string;
  /** A task whose subtasks are not drawn: how many tasks are hidden under it. */
  hiddenBelow: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface GraphEdge {
  key: string;
  kind: "parent" | "dependency";
  from: string;
  to: string;
  points: { x: number; y: number }[];
}

export interface GraphLayout {
  nodes: GraphNode[];
  edges: GraphEdge[];
  width: number;
  height: number;
  /** The node each task is drawn in (itself, its group, or a collapsed ancestor). */
  nodeOf: Map<string, string>;
}

const SIZE: Record<NodeKind, { width: number; height: number }> = {
  task: { width: 176, height: 48 },
  group: { width: 196, height: 60 },
  more: { width: 176, height: 40 },
};

/**
 * Chooses the nodes to draw (tasks, groups of many siblings, collapsed
 * subtrees) and lays them out with dagre: subtasks below their parents,
 * dependency edges between the nodes that hold the tasks.
 */
export function layoutGraph(index: TaskIndex, view: GraphView, limits = GraphLimits): GraphLayout {
  const nodes: GraphNode[] = [];
  const edges = new Map<string, Omit<GraphEdge, "points">>();
  const nodeOf = new Map<string, string>();

  const hideUnder = (taskId: string, key: string) => {
    const stack = [...(index.children.get(taskId) ?? [])];
    while (stack.length > 0) {
      const id = stack.pop()!;
      nodeOf.set(id, key);
      const kids = index.children.get(id);
      if (kids) stack.push(...kids);
    }
  };
  const addNode = (node: Omit<GraphNode, "x" | "y" | "width" | "height">) => {
    nodes.push({ ...node, x: 0, y: 0, ...SIZE[node.kind] });
  };
  const addEdge = (kind: GraphEdge["kind"], from: string, to: string) => {
    if (from === to) return;
    const key = `${kind}:${from}>${to}`;
    if (!edges.has(key)) edges.set(key, { key, kind, from, to });
  };

  const placeTask = (id: string, parentKey: string | null) => {
    const key = `t${id}`;
    nodeOf.set(id, key);
    const kids = index.children.get(id) ?? [];
    const collapsed =
      kids.length > 0 && (view.collapsed.has(id) || (!view.expanded.has(id) && nodes.length >= limits.nodeBudget));
    const below = collapsed ? totalOf(index.subtree.get(id)!) - 1 : 0;
    addNode({ key, kind: "task", taskId: id, label: index.byId.get(id)!.label, hiddenBelow: below });
    if (parentKey) addEdge("parent", parentKey, key);
    if (collapsed) hideUnder(id, key);
    else placeSiblings(kids, key, id);
  };

  const placeSiblings = (ids: string[], parentKey: string | null, parentId: string) => {
    if (ids.length <= limits.groupAbove) {
      for (const id of ids) placeTask(id, parentKey);
      return;
    }
    const byLabel = new Map<string, string[]>();
    for (const id of ids) {
      const label = index.byId.get(id)!.label;
      let list = byLabel.get(label);
      if (!list) byLabel.set(label, (list = []));
      list.push(id);
    }
    for (const [label, members] of byLabel) {
      if (members.length === 1) {
        placeTask(members[0], parentKey);
        continue;
      }
      const groupKey = `${parentId}/${label}`;
      const shown = view.openGroups.get(groupKey);
      if (shown === undefined) {
        const key = `g${groupKey}`;
        addNode({ key, kind: "group", groupKey, members, label, hiddenBelow: 0 });
        if (parentKey) addEdge("parent", parentKey, key);
        for (const m of members) {
          nodeOf.set(m, key);
          hideUnder(m, key);
        }
        continue;
      }
      for (const m of members.slice(0, shown)) placeTask(m, parentKey);
      const rest = members.slice(shown);
      if (rest.length > 0) {
        const key = `m${groupKey}`;
        addNode({ key, kind: "more", groupKey, members: rest, label, hiddenBelow: 0 });
        if (parentKey) addEdge("parent", parentKey, key);
        for (const m of rest) {
          nodeOf.set(m, key);
          hideUnder(m, key);
        }
      }
    }
  };

  placeSiblings(index.children.get("") ?? [], null, "");

  for (const task of index.byId.values()) {
    const to = nodeOf.get(task.id);
    if (!to) continue;
    for (const dep of task.dependsOn) {
      const from = nodeOf.get(dep);
      if (from) addEdge("dependency", from, to);
    }
  }

  const g = new Graph({ multigraph: false });
  g.setGraph({ rankdir: "TB", nodesep: 24, ranksep: 44, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.key, { width: n.width, height: n.height });
  // A parent edge and a dependency edge between the same two nodes: one is enough for the layout.
  for (const e of edges.values()) if (!g.hasEdge(e.from, e.to)) g.setEdge(e.from, e.to, { weight: e.kind === "parent" ? 2 : 1 });
  layout(g);
  for (const n of nodes) {
    const placed = g.node(n.key);
    n.x = placed.x - n.width / 2;
    n.y = placed.y - n.height / 2;
  }
  const laidOut: GraphEdge[] = [];
  for (const e of edges.values()) {
    const placed = g.edge(e.from, e.to) as { points?: { x: number; y: number }[] } | undefined;
    const a = g.node(e.from);
    const b = g.node(e.to);
    const points = placed?.points ?? [
      { x: a.x, y: a.y + SIZE.task.height / 2 },
      { x: b.x, y: b.y - SIZE.task.height / 2 },
    ];
    laidOut.push({ ...e, points });
  }
  const graph = g.graph() as { width?: number; height?: number };
  return { nodes, edges: laidOut, width: graph.width ?? 0, height: graph.height ?? 0, nodeOf };
}

/** State counts of the tasks a group or more node stands for, their subtrees included. */
export function countsOf(index: TaskIndex, members: readonly string[]): StateCounts {
  const c = emptyCounts();
  for (const m of members) {
    const s = index.subtree.get(m);
    if (s) for (const k of TASK_STATES) c[k] += s[k];
  }
  return c;
}
