/**
 * A workflow's input schema, checked at every trigger. The version stores it as JSON Schema
 * (core/graph.ts), so any process checks it, with or without the workflow's code: zod rebuilds a
 * validator from the stored schema once per version (`z.fromJSONSchema`), kept in a small cache.
 */
import { z } from 'zod';
import { WeftError } from '../core/errors.js';
import type { WorkflowVersionRecord } from '../store/control-rows.js';

const MAX_CACHED = 500;
const validators = new Map<string, z.ZodType>();

function validatorOf(version: WorkflowVersionRecord, schema: Record<string, unknown>): z.ZodType {
  let v = validators.get(version.id);
  if (!v) {
    v = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
    if (validators.size >= MAX_CACHED) validators.delete(validators.keys().next().value!);
    validators.set(version.id, v);
  }
  return v;
}

/** A field's place in the input, as a reader writes it: `input.items[2].sku`. */
function where(path: readonly PropertyKey[]): string {
  let out = 'input';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  return out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** Throws `invalid_input` naming every field that does not match; nothing when there is no schema. */
export function checkInputSchema(
  workflowId: string,
  version: WorkflowVersionRecord,
  input: unknown,
): void {
  const schema = version.graph.inputSchema;
  if (!schema) return;
  const result = validatorOf(version, schema).safeParse(input);
  if (result.success) return;
  const issues = result.error.issues.slice(0, 20).map((i) => ({
    path: where(i.path),
    code: i.code,
    // zod says "expected string, received undefined" for a field that is not there at all
    message:
      i.code === 'invalid_type' && i.path.length > 0 && valueAt(input, i.path) === undefined
        ? `missing (expected ${i.expected})`
        : i.message,
  }));
  const more = result.error.issues.length - issues.length;
  throw new WeftError(
    'invalid_input',
    `The input of workflow \`${workflowId}\` does not match its input schema (version ${version.version}): ${issues
      .map((i) => `${i.path}: ${i.message}`)
      .join(
        '; ',
      )}${more > 0 ? `; and ${more} more` : ''}. No run was started. Send an input that matches the schema (GET /api/v1/workflows/${workflowId} shows it as graph.inputSchema).`,
    { details: { workflowId, versionId: version.id, issues, inputSchema: schema } },
  );
}
