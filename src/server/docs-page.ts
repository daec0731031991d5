/**
 * `/api/docs`: a browsable page rendered on the server from the OpenAPI document — the same
 * document `/api/openapi.json` serves, so the page cannot drift from the API. No script, no CDN,
 * no bundled UI: it works offline and under a `default-src 'none'` content security policy.
 */

/** The parts of an OpenAPI 3.1 document the page reads (described structurally, see STYLE §2). */
interface Schema {
  $ref?: string;
  type?: string | string[];
  format?: string;
  enum?: unknown[];
  const?: unknown;
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  default?: unknown;
  example?: unknown;
}

interface MediaContent {
  content?: Record<string, { schema?: Schema }>;
  description?: string;
  required?: boolean;
}

interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: Array<{
    name: string;
    in: string;
    required?: boolean;
    description?: string;
    schema?: Schema;
  }>;
  requestBody?: MediaContent;
  responses?: Record<string, MediaContent>;
}

export interface DocsDocument {
  info: { title: string; version: string; description?: string };
  tags?: ReadonlyArray<{ name: string; description?: string }>;
  paths?: Record<string, Record<string, Operation> | undefined>;
  components?: {
    schemas?: Record<string, Schema>;
    securitySchemes?: Record<string, { description?: string }>;
  };
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** Escaped text with `code spans` shown as code (the descriptions use Markdown backticks). */
const prose = (s: string | undefined): string =>
  s === undefined ? '' : escapeHtml(s).replace(/`([^`]+)`/g, '<code>$1</code>');

const refName = (ref: string): string => ref.slice(ref.lastIndexOf('/') + 1);

const schemaLink = (name: string): string =>
  `<a href="#schema-${escapeHtml(name)}">${escapeHtml(name)}</a>`;

function constraints(s: Schema): string {
  const parts: string[] = [];
  if (s.minLength !== undefined || s.maxLength !== undefined) {
    parts.push(`length ${s.minLength ?? 0}–${s.maxLength ?? '∞'}`);
  }
  if (s.minimum !== undefined || s.maximum !== undefined) {
    parts.push(`${s.minimum ?? '−∞'} ≤ value ≤ ${s.maximum ?? '∞'}`);
  }
  if (s.default !== undefined) parts.push(`default ${JSON.stringify(s.default)}`);
  return parts.join(', ');
}

/** A schema as a TypeScript-like type, as HTML; named schemas link to their definition. */
function renderType(s: Schema | undefined, indent = ''): string {
  if (s === undefined) return 'any JSON';
  if (s.$ref) return schemaLink(refName(s.$ref));
  if (s.const !== undefined) return escapeHtml(JSON.stringify(s.const));
  if (s.enum) return s.enum.map((v) => escapeHtml(JSON.stringify(v))).join(' | ');
  const union = s.anyOf ?? s.oneOf;
  if (union) return union.map((u) => renderType(u, indent)).join(' | ');
  if (s.allOf) {
    // The generator writes `X` with a description as allOf [X, { description }], and a nullable
    // `X` as allOf [X, { type: [..., "null"] }]: neither is an intersection for a reader.
    const parts = s.allOf.filter((u) => !isAnnotation(u) && !isNullMarker(u));
    const nullable = s.allOf.some(isNullMarker);
    const shown = parts.map((u) => renderType(u, indent)).join(' &amp; ') || 'any JSON';
    return nullable ? `${shown} | null` : shown;
  }
  if (Array.isArray(s.type)) {
    return s.type.map((t) => renderType({ ...s, type: t }, indent)).join(' | ');
  }
  switch (s.type) {
    case 'array': {
      const item = renderType(s.items, indent);
      return /[|&]/.test(item) && !item.startsWith('{') ? `(${item})[]` : `${item}[]`;
    }
    case 'object':
      return renderObject(s, indent);
    case 'string':
      return s.format ? `string<span class="fmt">&lt;${escapeHtml(s.format)}&gt;</span>` : 'string';
    case 'integer':
    case 'number':
    case 'boolean':
    case 'null':
      return s.type;
    case undefined:
      return s.properties ? renderObject(s, indent) : 'any JSON';
    default:
      return escapeHtml(s.type);
  }
}

const SHAPE_KEYS = [
  '$ref',
  'type',
  'properties',
  'items',
  'enum',
  'const',
  'anyOf',
  'oneOf',
  'allOf',
] as const;
const isAnnotation = (s: Schema): boolean => SHAPE_KEYS.every((k) => s[k] === undefined);
const isNullMarker = (s: Schema): boolean =>
  s.$ref === undefined &&
  s.properties === undefined &&
  Array.isArray(s.type) &&
  s.type.includes('null');

function renderObject(s: Schema, indent: string): string {
  const inner = `${indent}  `;
  const lines: string[] = [];
  for (const [name, prop] of Object.entries(s.properties ?? {})) {
    const optional = s.required?.includes(name) ? '' : '?';
    const notes = [prop.description, constraints(prop)].filter(Boolean).join(' — ');
    const comment = notes ? ` <span class="note">// ${prose(notes)}</span>` : '';
    lines.push(
      `${inner}<b>${escapeHtml(name)}</b>${optional}: ${renderType(prop, inner)}${comment}`,
    );
  }
  if (typeof s.additionalProperties === 'object') {
    lines.push(`${inner}[key: string]: ${renderType(s.additionalProperties, inner)}`);
  }
  if (lines.length === 0)
    return s.additionalProperties === false ? '{}' : '{ [key: string]: any JSON }';
  return `{\n${lines.join('\n')}\n${indent}}`;
}

function renderContent(body: MediaContent | undefined): string {
  const json = body?.content?.['application/json'];
  return json ? `<pre class="type">${renderType(json.schema)}</pre>` : '';
}

function renderOperation(method: string, path: string, op: Operation): string {
  const id = op.operationId ?? `${method}-${path}`;
  const params = op.parameters ?? [];
  const paramRows = params
    .map(
      (p) =>
        `<tr><td><code>${escapeHtml(p.name)}</code>${p.required ? '' : '?'}</td><td>${escapeHtml(p.in)}</td>` +
        `<td><code>${renderType(p.schema)}</code></td><td>${prose([p.description ?? p.schema?.description, p.schema ? constraints(p.schema) : ''].filter(Boolean).join(' — '))}</td></tr>`,
    )
    .join('');
  const responses = Object.entries(op.responses ?? {})
    .map(
      ([status, r]) =>
        `<div class="response"><span class="status s${escapeHtml(status[0] ?? '')}">${escapeHtml(status)}</span> ${prose(r.description)}${renderContent(r)}</div>`,
    )
    .join('');
  return `<section class="op" id="${escapeHtml(id)}">
<h3><span class="method ${method}">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code>${op.security?.length ? ' <span class="key">API key</span>' : ''}</h3>
<p class="summary">${prose(op.summary)}</p>
${op.description ? `<p>${prose(op.description)}</p>` : ''}
${paramRows ? `<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>notes</th></tr>${paramRows}</table>` : ''}
${op.requestBody ? `<h4>Request body${op.requestBody.required ? '' : ' (optional)'} — application/json</h4>${renderContent(op.requestBody)}` : ''}
<h4>Responses</h4>${responses}
</section>`;
}

export function renderDocsPage(doc: DocsDocument): string {
  const operations: Array<{ tag: string; method: string; path: string; op: Operation }> = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = item?.[method];
      if (op) operations.push({ tag: op.tags?.[0] ?? 'Other', method, path, op });
    }
  }
  const tags = [...(doc.tags ?? []).map((t) => t.name), ...operations.map((o) => o.tag)].filter(
    (t, i, all) => all.indexOf(t) === i && operations.some((o) => o.tag === t),
  );
  const nav = tags
    .map(
      (tag) =>
        `<li>${escapeHtml(tag)}<ul>${operations
          .filter((o) => o.tag === tag)
          .map(
            (o) =>
              `<li><a href="#${escapeHtml(o.op.operationId ?? '')}"><span class="method ${o.method}">${o.method.toUpperCase()}</span> ${escapeHtml(o.path)}</a></li>`,
          )
          .join('')}</ul></li>`,
    )
    .join('');
  const body = tags
    .map((tag) => {
      const description = doc.tags?.find((t) => t.name === tag)?.description;
      return `<h2 id="tag-${escapeHtml(tag)}">${escapeHtml(tag)}</h2>${description ? `<p>${prose(description)}</p>` : ''}${operations
        .filter((o) => o.tag === tag)
        .map((o) => renderOperation(o.method, o.path, o.op))
        .join('\n')}`;
    })
    .join('\n');
  const schemas = Object.entries(doc.components?.schemas ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(
      ([name, s]) =>
        `<section class="schema" id="schema-${escapeHtml(name)}"><h3>${escapeHtml(name)}</h3>${s.description ? `<p>${prose(s.description)}</p>` : ''}<pre class="type">${renderType({ ...s, $ref: undefined })}</pre></section>`,
    )
    .join('\n');
  const auth = Object.values(doc.components?.securitySchemes ?? {})
    .map((s) => `<p>${prose(s.description)}</p>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(doc.info.title)} ${escapeHtml(doc.info.version)}</title>
<style>${STYLE}</style></head>
<body><nav><p class="title">${escapeHtml(doc.info.title)} <small>${escapeHtml(doc.info.version)}</small></p><ul>${nav}</ul><p><a href="#schemas">Schemas</a></p><p><a href="/api/openapi.json">openapi.json</a></p></nav>
<main><h1>${escapeHtml(doc.info.title)}</h1><p>${prose(doc.info.description)}</p>
<h2>Authentication</h2>${auth}
${body}
<h2 id="schemas">Schemas</h2>${schemas}
</main></body></html>`;
}

const STYLE = `
:root{color-scheme:light dark;--fg:#1d2126;--muted:#5f6b7a;--bg:#fff;--panel:#f5f7fa;--line:#dde3ea;--link:#0b62d6}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ee;--muted:#9aa5b4;--bg:#14171c;--panel:#1c2027;--line:#2c323c;--link:#6aa8ff}}
*{box-sizing:border-box}body{margin:0;display:flex;font:15px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
nav{position:sticky;top:0;height:100vh;overflow:auto;width:300px;flex:none;padding:16px;border-right:1px solid var(--line);background:var(--panel);font-size:13px}
nav ul{list-style:none;padding-left:0;margin:4px 0 12px}nav ul ul{padding-left:4px}nav li{margin:3px 0}.title{font-weight:600;font-size:16px}
main{padding:24px 40px;max-width:1000px;min-width:0}a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
h2{margin-top:40px;border-bottom:1px solid var(--line);padding-bottom:4px}h3{margin:0 0 4px;font-size:16px}h4{margin:16px 0 6px;font-size:13px;text-transform:uppercase;color:var(--muted)}
.op,.schema{border:1px solid var(--line);border-radius:6px;padding:16px;margin:16px 0}.summary{margin:0;color:var(--muted)}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace}pre.type{background:var(--panel);padding:10px 12px;border-radius:4px;overflow:auto;white-space:pre}
.method{display:inline-block;min-width:48px;text-align:center;border-radius:3px;padding:0 4px;font:600 11px/18px ui-monospace,monospace;color:#fff}
.get{background:#2b7bd6}.post{background:#2f9e58}.put,.patch{background:#c7851b}.delete{background:#cc3d3d}
.key{font-size:11px;border:1px solid var(--line);border-radius:3px;padding:0 4px;color:var(--muted);vertical-align:middle}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
.response{margin:6px 0}.status{font:600 12px ui-monospace,monospace;padding:0 6px;border-radius:3px;color:#fff;background:#777}.s2{background:#2f9e58}.s4{background:#c7851b}.s5{background:#cc3d3d}
.note{color:var(--muted)}.fmt{color:var(--muted)}
`;
