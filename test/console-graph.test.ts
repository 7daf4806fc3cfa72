import { describe, expect, it } from "vitest";
import { GraphLimits, type GraphTask, countsOf, emptyView, indexTasks, layoutGraph } from "../web/src/task-graph.js";

/** A root with `n` subtasks named Leaf; every 100th failed, the rest computed. */
function fanOut(n: number): GraphTask[] {
  const tasks: GraphTask[] = [{ id: "1", parentId: "", dependsOn: [], state: "computed", label: "Root" }];
  for (let i = 0; i < n; i++) tasks.push({ id: String(i + 2), parentId: "1", dependsOn: [], state: i % 100 === 0 ? "failed" : "computed", label: "Leaf" });
  return tasks;
}

describe("the console's task tree", () => {
  it("draws each task of a small job, subtasks under their parent, dependencies between them", () => {
    const tasks: GraphTask[] = [
      { id: "1", parentId: "", dependsOn: [], state: "computed", label: "Ingest" },
      { id: "2", parentId: "1", dependsOn: [], state: "computed", label: "Fetch" },
      { id: "3", parentId: "1", dependsOn: ["2"], state: "running", label: "Parse" },
      { id: "4", parentId: "1", dependsOn: ["2"], state: "queued", label: "Parse" },
    ];
    const graph = layoutGraph(indexTasks(tasks), emptyView());
    expect(graph.nodes.map((n) => n.taskId).sort()).toEqual(["1", "2", "3", "4"]);
    expect(graph.edges.filter((e) => e.kind === "parent")).toHaveLength(3);
    expect(graph.edges.filter((e) => e.kind === "dependency").map((e) => `${e.from}>${e.to}`).sort()).toEqual(["t2>t3", "t2>t4"]);
    const y = (id: string) => graph.nodes.find((n) => n.taskId === id)!.y;
    expect(y("2")).toBeGreaterThan(y("1"));
    expect(y("3")).toBeGreaterThan(y("2"));
  });

  it("draws 10,000 sibling subtasks as one group that opens a page at a time", () => {
    const index = indexTasks(fanOut(10_000));
    const closed = layoutGraph(index, emptyView());
    expect(closed.nodes.map((n) => n.kind)).toEqual(["task", "group"]);
    const group = closed.nodes[1];
    expect(group.members).toHaveLength(10_000);
    expect(countsOf(index, group.members!)).toMatchObject({ computed: 9_900, failed: 100 });

    const open = layoutGraph(index, { ...emptyView(), openGroups: new Map([[group.groupKey!, GraphLimits.groupPage]]) });
    expect(open.nodes.filter((n) => n.kind === "task")).toHaveLength(1 + GraphLimits.groupPage);
    const more = open.nodes.find((n) => n.kind === "more")!;
    expect(more.members).toHaveLength(10_000 - GraphLimits.groupPage);
    // Every task is drawn somewhere: itself, or the node that stands for it.
    expect(open.nodeOf.size).toBe(10_001);
  });

  it("collapses a subtree on request, counting what it hides", () => {
    const index = indexTasks(fanOut(5));
    const graph = layoutGraph(index, { ...emptyView(), collapsed: new Set(["1"]) });
    expect(graph.nodes).toHaveLength(1);
    expect(graph.nodes[0].hiddenBelow).toBe(5);
    expect(graph.nodeOf.get("6")).toBe("t1");
  });

  it("keeps a deep tree within the node budget by collapsing what the user did not open", () => {
    // A chain of subtasks, each with one child: no siblings to group.
    const tasks: GraphTask[] = Array.from({ length: 2_000 }, (_, i) => ({
      id: String(i + 1),
      parentId: i === 0 ? "" : String(i),
      dependsOn: [],
      state: "computed" as const,
      label: "Step",
    }));
    const graph = layoutGraph(indexTasks(tasks), emptyView());
    expect(graph.nodes.length).toBeLessThanOrEqual(GraphLimits.nodeBudget + 1);
    expect(graph.nodes[graph.nodes.length - 1].hiddenBelow).toBe(2_000 - graph.nodes.length);
  });
});
