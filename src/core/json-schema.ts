/**
 * Schemas stored with a workflow version and checked where the workflow's code may not be loaded:
 * a workflow's input schema (checked at every trigger) and an approval's payload schema (checked
 * when the token is completed). Both are written as zod in the definition, stored as JSON Schema
 * (draft 2020-12), and checked by a validator zod rebuilds from the stored schema.
 */
import { z } from 'zod';
import { WeftError } from './errors.js';

export type JsonSchemaObject = Record<string, unknown>;

/** By shape, not instanceof: the application may load its own copy of zod 4. */
export function isZodSchema(value: unknown): value is z.ZodType {
  return typeof value === 'object' && value !== null && '_zod' in value;
}

/**
 * A zod schema as the JSON Schema to store (`io`: the schema's input or output side); a JSON
 * Schema object passes as is. Throws an Error saying why when it cannot be stored or cannot be
 * checked from what is stored.
 */
export function toStoredSchema(schema: unknown, io: 'input' | 'output'): JsonSchemaObject {
  const json = isZodSchema(schema)
    ? (z.toJSONSchema(schema, { io }) as JsonSchemaObject)
    : (schema as JsonSchemaObject);
  validatorOf(json); // refuse what cannot be checked
  return json;
}

export interface SchemaIssue {
  /** The field, as a reader writes it: `input.items[2].sku`. */
  path: string;
  code: string;
  message: string;
}

// Keyed by the stored schema object: a version's graph comes from the control store's cache, so
// a workflow's triggers build its validator once.
const validators = new WeakMap<object, z.ZodType>();

function validatorOf(schema: JsonSchemaObject): z.ZodType {
  let v = validators.get(schema);
  if (!v) {
    v = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
    validators.set(schema, v);
  }
  return v;
}

/** What does not match, field by field (at most 20); empty when the value matches. */
export function schemaIssues(
  schema: JsonSchemaObject,
  value: unknown,
  root: string,
): SchemaIssue[] {
  const result = validatorOf(schema).safeParse(value);
  if (result.success) return [];
  return result.error.issues.slice(0, 20).map((i) => ({
    path: where(root, i.path),
    code: i.code,
    // zod says "expected string, received undefined" for a field that is not there at all
    message:
      i.code === 'invalid_type' && i.path.length > 0 && valueAt(value, i.path) === undefined
        ? `missing (expected ${i.expected})`
        : i.message,
  }));
}

/** The issues as one line: `input.email: …; input.name: missing (expected string)`. */
export function describeIssues(issues: readonly SchemaIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('; ');
}

/**
 * Throws `invalid_input` naming every field of a trigger's input that the workflow version's input
 * schema refuses; nothing when the version has no schema.
 */
export function checkInputSchema(
  workflowId: string,
  version: { id: string; version: number; graph: { inputSchema?: JsonSchemaObject } },
  input: unknown,
): void {
  const schema = version.graph.inputSchema;
  if (!schema) return;
  const issues = schemaIssues(schema, input, 'input');
  if (issues.length === 0) return;
  throw new WeftError(
    'invalid_input',
    `The input of workflow \`${workflowId}\` does not match its input schema (version ${version.version}): ${describeIssues(issues)}. No run was started. Send an input that matches the schema (GET /api/v1/workflows/${workflowId} shows it as graph.inputSchema).`,
    { details: { workflowId, versionId: version.id, issues, inputSchema: schema } },
  );
}

function where(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  return out;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}
