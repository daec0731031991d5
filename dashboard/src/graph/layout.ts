/**
 * Graph layout with elkjs (layered, left to right), run in a Web Worker so a 1,000-node graph
 * never freezes the page while it is placed. Loop and parallel bodies are compound nodes: ELK
 * places a body inside its owner, and React Flow draws the owner as a group around it.
 */
import ELK, { type ElkExtendedEdge, type ElkNode } from 'elkjs/lib/elk-api.js';
import ElkWorker from 'elkjs/lib/elk-worker.min.js?worker';
import type { Graph, GraphNode } from '../api';

export const NODE_WIDTH = 188;
export const NODE_HEIGHT = 58;

export interface PlacedNode {
  node: GraphNode;
  x: number;
  y: number;
  width: number;
  height: number;
  /** The owner group this node sits in (positions are relative to it), or undefined. */
  parent?: string;
  isGroup: boolean;
}

export interface Layout {
  nodes: PlacedNode[];
  width: number;
  height: number;
}

let elk: InstanceType<typeof ELK> | undefined;
function engine(): InstanceType<typeof ELK> {
  elk ??= new ELK({ workerFactory: () => new ElkWorker() });
  return elk;
}

const GROUP_KINDS = new Set(['forEach', 'times', 'while', 'parallel']);

export function layoutKey(graph: Graph): string {
  return graph.nodes.map((n) => `${n.id}:${n.scope ?? ''}`).join('|') + '#' + graph.edges.length;
}

export async function layoutGraph(graph: Graph): Promise<Layout> {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const owners = new Set(graph.nodes.filter((n) => n.scope).map((n) => n.scope!));
  const big = graph.nodes.length > 300;
  const elkNodes = new Map<string, ElkNode>();
  for (const n of graph.nodes) {
    const isGroup = owners.has(n.id) || GROUP_KINDS.has(n.kind);
    elkNodes.set(n.id, {
      id: n.id,
      ...(isGroup && owners.has(n.id)
        ? {
            children: [],
            layoutOptions: {
              'elk.padding': '[top=40,left=16,bottom=16,right=16]',
              'elk.direction': 'RIGHT',
            },
          }
        : { width: NODE_WIDTH, height: NODE_HEIGHT }),
    });
  }
  const root: ElkNode = {
    id: '__root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.layered.spacing.nodeNodeBetweenLayers': '56',
      'elk.spacing.nodeNode': '28',
      'elk.edgeLabels.inline': 'true',
      // Large graphs: the cheaper strategies keep layout well under a second.
      ...(big
        ? {
            'elk.layered.nodePlacement.strategy': 'LINEAR_SEGMENTS',
            'elk.layered.crossingMinimization.strategy': 'LAYER_SWEEP',
            'elk.layered.thoroughness': '1',
          }
        : { 'elk.layered.nodePlacement.strategy': 'BRANDES_KOEPF' }),
    },
    children: [],
    edges: [],
  };
  for (const n of graph.nodes) {
    const node = elkNodes.get(n.id)!;
    const parent = n.scope ? elkNodes.get(n.scope) : undefined;
    (parent?.children ?? root.children!).push(node);
  }
  root.edges = graph.edges
    .filter((e) => byId.has(e.from) && byId.has(e.to))
    .map((e, i): ElkExtendedEdge => ({
      id: `e${i}`,
      sources: [e.from],
      targets: [e.to],
      ...(e.branch
        ? { labels: [{ text: e.branch, width: e.branch.length * 7 + 8, height: 16 }] }
        : {}),
    }));

  const placed = await engine().layout(root);
  const nodes: PlacedNode[] = [];
  const walk = (container: ElkNode, parent: string | undefined) => {
    for (const child of container.children ?? []) {
      const node = byId.get(child.id);
      if (!node) continue;
      const isGroup = (child.children?.length ?? 0) > 0 || owners.has(child.id);
      const item: PlacedNode = {
        node,
        x: child.x ?? 0,
        y: child.y ?? 0,
        width: child.width ?? NODE_WIDTH,
        height: child.height ?? NODE_HEIGHT,
        isGroup,
      };
      if (parent) item.parent = parent;
      nodes.push(item);
      if (child.children) walk(child, child.id);
    }
  };
  walk(placed, undefined);
  return { nodes, width: placed.width ?? 0, height: placed.height ?? 0 };
}
