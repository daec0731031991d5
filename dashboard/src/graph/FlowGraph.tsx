/**
 * A workflow graph drawn with React Flow: steps as nodes coloured by an overlay (step run status,
 * rerun fate, changed-between-versions), loop and parallel bodies as groups, router branches as
 * edge labels, and failure / always / timeout edges styled apart. Layout is elk's (layout.ts).
 * Only the visible part is rendered, so a 1,000-node graph pans and zooms smoothly.
 */
import {
  Background,
  Controls,
  Handle,
  MarkerType,
  MiniMap,
  NodeToolbar,
  Position,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
  type Edge,
  type Node,
  type NodeProps,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { memo, useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import type { Fate, Graph, GraphNode } from '../api';
import { groupOf, layoutGraph, layoutKey, type Layout } from './layout';

export interface NodeOverlay {
  /** A step run status, or `reused` for a step a rerun took from its source. */
  status?: string;
  /** Iterations or branches of a body step: how many, and how many by status. */
  counts?: { total: number; succeeded: number; failed: number; running: number };
  fate?: Fate;
  reason?: string | null;
  detail?: string;
  changed?: 'changed' | 'added';
  note?: string;
}

interface StepData extends Record<string, unknown> {
  node: GraphNode;
  overlay: NodeOverlay | undefined;
  actions: ReactNode;
  isGroup: boolean;
}

const KIND_LABEL: Record<string, string> = {
  step: 'step',
  router: 'router',
  forEach: 'for each',
  times: 'times',
  while: 'while',
  parallel: 'parallel',
  sleep: 'sleep',
  approval: 'approval',
  subWorkflow: 'sub-workflow',
};

function describe(data: StepData): string {
  const o = data.overlay;
  const parts = [`${data.node.id} (${KIND_LABEL[data.node.kind] ?? data.node.kind})`];
  if (o?.status) parts.push(`status ${o.status}`);
  if (o?.fate)
    parts.push(`${o.fate}${o.reason ? ` — ${o.reason}` : ''}${o.detail ? `: ${o.detail}` : ''}`);
  if (o?.changed)
    parts.push(o.changed === 'added' ? 'new in this version' : 'changed in this version');
  return parts.join('; ');
}

function Badge({ overlay }: { overlay: NodeOverlay | undefined }) {
  if (!overlay) return null;
  if (overlay.fate) return <span className={`badge fate-${overlay.fate}`}>{overlay.fate}</span>;
  if (overlay.status) return <span className={`badge st-${overlay.status}`}>{overlay.status}</span>;
  if (overlay.changed) return <span className="badge changed">{overlay.changed}</span>;
  return null;
}

const StepNode = memo(function StepNode({ data, selected }: NodeProps<Node<StepData>>) {
  const o = data.overlay;
  const cls = [
    'flow-node',
    o?.status ? `st-${o.status}` : '',
    o?.fate ? `fate-${o.fate}` : '',
    o?.changed ? 'is-changed' : '',
    selected ? 'is-selected' : '',
  ].join(' ');
  return (
    <div
      className={cls}
      data-testid={`node-${data.node.id}`}
      data-status={o?.status ?? ''}
      data-fate={o?.fate ?? ''}
      title={describe(data)}
      aria-label={describe(data)}
    >
      <Handle type="target" position={Position.Left} />
      <div className="flow-node-top">
        <span className="kind">{KIND_LABEL[data.node.kind] ?? data.node.kind}</span>
        <Badge overlay={o} />
      </div>
      <div className="flow-node-id">{data.node.id}</div>
      {o?.counts ? (
        <div className="flow-node-counts">
          {o.counts.succeeded}/{o.counts.total} done
          {o.counts.running ? ` · ${o.counts.running} running` : ''}
          {o.counts.failed ? ` · ${o.counts.failed} failed` : ''}
        </div>
      ) : o?.fate && o.reason ? (
        <div className="flow-node-counts">{o.reason.replace(/_/g, ' ')}</div>
      ) : o?.note ? (
        <div className="flow-node-counts">{o.note}</div>
      ) : null}
      <Handle type="source" position={Position.Right} />
      {data.actions ? (
        <NodeToolbar isVisible={selected} position={Position.Bottom}>
          <div className="node-toolbar">{data.actions}</div>
        </NodeToolbar>
      ) : null}
    </div>
  );
});

const GroupNode = memo(function GroupNode({ data, selected }: NodeProps<Node<StepData>>) {
  const o = data.overlay;
  return (
    <div
      className={`flow-group ${o?.status ? `st-${o.status}` : ''} ${o?.fate ? `fate-${o.fate}` : ''} ${selected ? 'is-selected' : ''}`}
      data-testid={`node-${data.node.id}`}
      data-status={o?.status ?? ''}
      data-fate={o?.fate ?? ''}
      title={describe(data)}
      aria-label={describe(data)}
    >
      <Handle type="target" position={Position.Left} />
      <div className="flow-group-head">
        <span className="kind">{KIND_LABEL[data.node.kind] ?? data.node.kind}</span>
        <strong>{data.node.id}</strong>
        <Badge overlay={o} />
        {o?.counts ? (
          <span className="muted">
            {o.counts.succeeded}/{o.counts.total}
          </span>
        ) : null}
      </div>
      <Handle type="source" position={Position.Right} />
      {data.actions ? (
        <NodeToolbar isVisible={selected} position={Position.Top}>
          <div className="node-toolbar">{data.actions}</div>
        </NodeToolbar>
      ) : null}
    </div>
  );
});

const nodeTypes = { step: StepNode, group: GroupNode };

const EDGE_STYLE: Record<string, { stroke: string; strokeDasharray?: string }> = {
  success: { stroke: '#64748b' },
  branch: { stroke: '#2563eb' },
  failure: { stroke: '#dc2626', strokeDasharray: '6 4' },
  always: { stroke: '#7c3aed', strokeDasharray: '2 4' },
  timeout: { stroke: '#d97706', strokeDasharray: '8 3 2 3' },
};

export interface FlowGraphProps {
  graph: Graph;
  overlays?: Record<string, NodeOverlay>;
  selected?: string | null;
  onSelect?: (stepId: string | null) => void;
  /** Buttons shown under the selected node. */
  actions?: (stepId: string) => ReactNode;
  height?: number | string;
}

export function FlowGraph(props: FlowGraphProps) {
  return (
    <ReactFlowProvider>
      <FlowGraphInner {...props} />
    </ReactFlowProvider>
  );
}

function FlowGraphInner({
  graph,
  overlays,
  selected,
  onSelect,
  actions,
  height = 520,
}: FlowGraphProps) {
  const key = layoutKey(graph);
  const [layout, setLayout] = useState<{ key: string; layout: Layout } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const box = useRef<HTMLDivElement | null>(null);
  const [width, setWidth] = useState(800);
  useLayoutEffect(() => {
    const el = box.current?.parentElement;
    if (!el) return;
    setWidth(el.clientWidth);
    const observer = new ResizeObserver(() => setWidth(el.clientWidth));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    let live = true;
    const started = performance.now();
    layoutGraph(graph).then(
      (l) => {
        if (!live) return;
        performance.measure?.('weft:layout', { start: started, end: performance.now() });
        setLayout({ key, layout: l });
      },
      (e: unknown) => live && setError(String((e as Error)?.message ?? e)),
    );
    return () => {
      live = false;
    };
    // The layout depends on the graph's shape only (layoutKey), not on overlays.
  }, [key]);

  const nodes = useMemo<Node<StepData>[]>(() => {
    if (!layout) return [];
    return layout.layout.nodes.map((p) => {
      const n: Node<StepData> = {
        id: p.node.id,
        type: p.isGroup ? 'group' : 'step',
        position: { x: p.x, y: p.y },
        data: {
          node: p.node,
          overlay: overlays?.[p.node.id],
          actions: actions && selected === p.node.id ? actions(p.node.id) : null,
          isGroup: p.isGroup,
        },
        selected: selected === p.node.id,
        style: { width: p.width, height: p.height },
        draggable: false,
        connectable: false,
        ariaLabel: `${p.node.kind} ${p.node.id}`,
      };
      if (p.parent) {
        n.parentId = p.parent;
        n.extent = 'parent';
      }
      return n;
    });
  }, [layout, overlays, selected, actions]);

  const edges = useMemo<Edge[]>(
    () =>
      graph.edges.map((e, i) => {
        const kind = e.kind ?? (e.branch ? 'branch' : e.on);
        const style = EDGE_STYLE[kind] ?? EDGE_STYLE.success!;
        const label = e.branch ?? (e.on !== 'success' ? e.on : e.when ? 'when' : undefined);
        const edge: Edge = {
          id: `e${i}-${e.from}-${e.to}`,
          source: e.from,
          target: e.to,
          type: 'smoothstep',
          style: { ...style, strokeWidth: 1.6 },
          // Arrow heads are one SVG marker per edge: left out on big graphs (direction is left
          // to right anyway).
          ...(graph.edges.length > 300
            ? {}
            : { markerEnd: { type: MarkerType.ArrowClosed, color: style.stroke } }),
          className: `edge-${kind}`,
          focusable: false,
        };
        if (label) {
          edge.label = label;
          edge.labelStyle = { fill: style.stroke, fontWeight: 600, fontSize: 11 };
          edge.labelBgStyle = { fill: '#fff' };
        }
        return edge;
      }),
    [graph.edges],
  );

  const big = graph.nodes.length > 300;
  // The box fits the drawing at the zoom fitView will pick: no tall empty band around a chain.
  const boxHeight = useMemo(() => {
    if (!layout || typeof height !== 'number') return height;
    const l = layout.layout;
    const zoom = Math.min(1.1, (width - 40) / Math.max(1, l.width));
    return Math.round(Math.min(height, Math.max(220, l.height * zoom + 90)));
  }, [layout, height, width]);

  const flow = useReactFlow();
  /** Keyboard and big graphs: pick a step by name; the view moves to it. */
  const jump = (id: string) => {
    onSelect?.(id);
    const placed = layout?.layout.nodes.find((p) => p.node.id === id);
    if (!placed) return;
    let { x, y } = placed;
    for (let parent = placed.parent; parent;) {
      const owner = layout!.layout.nodes.find((p) => p.node.id === parent);
      if (!owner) break;
      x += owner.x;
      y += owner.y;
      parent = owner.parent;
    }
    void flow.setCenter(x + placed.width / 2, y + placed.height / 2, {
      zoom: Math.max(flow.getZoom(), 0.8),
      duration: 300,
    });
  };

  if (error) return <div className="error-box">The graph could not be laid out: {error}</div>;
  if (!layout)
    return (
      <div className="graph-box loading" style={{ height }} ref={box}>
        Laying out {graph.nodes.length} steps…
      </div>
    );
  return (
    <div
      className={big ? 'graph-box big' : 'graph-box'}
      style={{ height: boxHeight }}
      ref={box}
      data-testid="graph"
      data-nodes={graph.nodes.length}
    >
      {onSelect ? (
        <label className="jump">
          <span className="sr-only">Select a step</span>
          <select
            value={selected ?? ''}
            onChange={(e) => (e.target.value ? jump(e.target.value) : onSelect(null))}
          >
            <option value="">Select a step…</option>
            {graph.nodes.map((n) => (
              <option key={n.id} value={n.id}>
                {n.id}
                {groupOf(n) ? ` (in ${groupOf(n)})` : ''}
              </option>
            ))}
          </select>
        </label>
      ) : null}
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onlyRenderVisibleElements
        fitView
        // A big graph opens at a readable zoom around its centre rather than as a grey carpet:
        // only what is on screen is rendered then; the mini map and zooming out show the rest.
        fitViewOptions={{ padding: 0.12, maxZoom: 1.1, ...(big ? { minZoom: 0.45 } : {}) }}
        // Zoomed all the way out a 1,000-node graph would mount every node at once; the floor
        // keeps a few hundred on screen at most, and the mini map shows the whole.
        minZoom={big ? 0.25 : 0.05}
        nodesDraggable={false}
        nodesConnectable={false}
        elementsSelectable
        onNodeClick={(_, node) => onSelect?.(node.id)}
        // Enter or Space on a focused node (Tab moves between nodes) selects it like a click.
        onNodesChange={(changes) => {
          const picked = changes.find((c) => c.type === 'select' && c.selected);
          if (picked && picked.type === 'select') onSelect?.(picked.id);
        }}
        onPaneClick={() => onSelect?.(null)}
      >
        <Background gap={20} size={1} />
        <Controls showInteractive={false} />
        {/* A map only where it helps: graphs too big to read at the fitted zoom. */}
        {graph.nodes.length > 40 ? (
          <MiniMap pannable zoomable nodeColor="#cbd5e1" nodeStrokeWidth={2} />
        ) : null}
      </ReactFlow>
    </div>
  );
}
