/**
 * Graph layout with elkjs (layered, left to right), run in a Web Worker so a 1,000-node graph
 * never freezes the page while it is placed. Loop and parallel bodies are compound nodes: ELK
 * places a body inside its owner, and React Flow draws the owner as a group around it.
 */
import ELK, { type ElkExtendedEdge, type ElkNode } from 'elkjs/lib/elk-api.js';
// The worker script as a plain hashed asset: it is minified already, and bundling it again cost
// most of the build's time.
import elkWorkerUrl from 'elkjs/lib/elk-worker.min.js?url';
import type { Graph, GraphNode } from '../api';

export const NODE_WIDTH = 164;
export const NODE_HEIGHT = 56;

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
  elk ??= new ELK({ workerFactory: () => new Worker(elkWorkerUrl) });
  return elk;
}

/**
 * Start the worker (fetch and compile ELK, ~1.4 MB) while the page is still loading its data,
 * so the first layout does not wait for it.
 */
export function warmUpLayout(): void {
  engine();
}

/** The body a node is drawn in: the server's drawing hint, else its scope. */
export function groupOf(n: GraphNode): string | undefined {
  return n.group ?? n.scope ?? undefined;
}

const GROUP_KINDS = new Set(['forEach', 'times', 'while', 'parallel']);

export function layoutKey(graph: Graph): string {
  return (
    graph.nodes.map((n) => `${n.id}:${groupOf(n) ?? ''}:${n.kind}`).join('|') +
    '#' +
    graph.edges.map((e) => `${e.from}>${e.to}:${e.branch ?? ''}`).join('|')
  );
}

/**
 * Layouts are a pure function of the graph's shape, so they are kept for the browser session
 * (sessionStorage): reopening a run or a workflow skips ELK altogether.
 */
const CACHE_PREFIX = 'weft.layout.';
const memory = new Map<string, Layout>();

function cacheGet(key: string): Layout | undefined {
  const hit = memory.get(key);
  if (hit) return hit;
  try {
    const raw = sessionStorage.getItem(CACHE_PREFIX + hashKey(key));
    if (!raw) return undefined;
    const stored = JSON.parse(raw) as { key: string; layout: Layout };
    return stored.key === key ? stored.layout : undefined;
  } catch {
    return undefined;
  }
}

function cachePut(key: string, layout: Layout): void {
  memory.set(key, layout);
  try {
    sessionStorage.setItem(CACHE_PREFIX + hashKey(key), JSON.stringify({ key, layout }));
  } catch {
    // Full or unavailable: the in-memory copy still serves this page.
  }
}

/** FNV-1a, 32 bits: a short storage key (the full key is compared on read). */
function hashKey(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(36);
}

export async function layoutGraph(graph: Graph): Promise<Layout> {
  const key = layoutKey(graph);
  const cached = cacheGet(key);
  if (cached) {
    // Nodes carry the current data (descriptions, hashes); positions come from the cache.
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    return {
      ...cached,
      nodes: cached.nodes.map((p) => ({ ...p, node: byId.get(p.node.id) ?? p.node })),
    };
  }
  // Big graphs without bodies: a direct layered placement in a few milliseconds (ELK's takes
  // seconds on 1,000 nodes and would keep the page waiting).
  const layout =
    graph.nodes.length > 300 && !graph.nodes.some((n) => groupOf(n))
      ? quickLayered(graph)
      : await computeLayout(graph);
  cachePut(key, layout);
  return layout;
}

async function computeLayout(graph: Graph): Promise<Layout> {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const owners = new Set(graph.nodes.map(groupOf).filter((g): g is string => !!g));
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
              'elk.padding': '[top=36,left=12,bottom=12,right=12]',
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
      // Only graphs with loop or parallel bodies need cross-hierarchy layout (it costs ~2x).
      ...(owners.size > 0 ? { 'elk.hierarchyHandling': 'INCLUDE_CHILDREN' } : {}),
      'elk.layered.spacing.nodeNodeBetweenLayers': '44',
      'elk.spacing.nodeNode': '22',
      'elk.edgeLabels.inline': 'true',
      // Large graphs: the cheaper strategies keep layout well under a second.
      ...(big
        ? {
            'elk.layered.nodePlacement.strategy': 'SIMPLE',
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
    const group = groupOf(n);
    const parent = group ? elkNodes.get(group) : undefined;
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

/**
 * Layered placement for large flat graphs: layer = longest path from a source (Kahn's order),
 * nodes in a layer ordered by the mean position of their parents (one sweep, which keeps lanes
 * straight), each layer centred. O(nodes + edges).
 */
export function quickLayered(graph: Graph): Layout {
  const GAP_X = 56;
  const GAP_Y = 28;
  const ids = graph.nodes.map((n) => n.id);
  const parents = new Map<string, string[]>(ids.map((id) => [id, []]));
  const children = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of graph.edges) {
    if (!parents.has(e.from) || !parents.has(e.to)) continue;
    parents.get(e.to)!.push(e.from);
    children.get(e.from)!.push(e.to);
  }
  const indegree = new Map(ids.map((id) => [id, parents.get(id)!.length]));
  const layer = new Map<string, number>();
  const queue = ids.filter((id) => indegree.get(id) === 0);
  for (const id of queue) layer.set(id, 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i]!;
    for (const c of children.get(id)!) {
      layer.set(c, Math.max(layer.get(c) ?? 0, layer.get(id)! + 1));
      indegree.set(c, indegree.get(c)! - 1);
      if (indegree.get(c) === 0) queue.push(c);
    }
  }
  // A cycle (never in a valid graph) leaves nodes unplaced: put them after the rest.
  const maxLayer = Math.max(0, ...layer.values());
  for (const id of ids) if (!layer.has(id)) layer.set(id, maxLayer + 1);
  const layers: string[][] = [];
  for (const id of queue.length === ids.length ? queue : ids)
    (layers[layer.get(id)!] ??= []).push(id);
  const rowOf = new Map<string, number>();
  for (const ids of layers) {
    if (!ids) continue;
    const weight = (id: string) => {
      const ps = parents.get(id)!.filter((p) => rowOf.has(p));
      return ps.length ? ps.reduce((a, p) => a + rowOf.get(p)!, 0) / ps.length : 0;
    };
    ids.sort((a, b) => weight(a) - weight(b));
    ids.forEach((id, i) => rowOf.set(id, i - (ids.length - 1) / 2));
  }
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const minRow = Math.min(...rowOf.values());
  const nodes: PlacedNode[] = ids.map((id) => ({
    node: byId.get(id)!,
    x: layer.get(id)! * (NODE_WIDTH + GAP_X),
    y: (rowOf.get(id)! - minRow) * (NODE_HEIGHT + GAP_Y),
    width: NODE_WIDTH,
    height: NODE_HEIGHT,
    isGroup: false,
  }));
  const width = Math.max(...nodes.map((n) => n.x + n.width));
  const height = Math.max(...nodes.map((n) => n.y + n.height));
  return { nodes, width, height };
}
