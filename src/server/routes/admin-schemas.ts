/**
 * Schemas of the operations routes (routes/admin.ts): API keys, environments and projects.
 * Request objects are strict (an unknown field is a 400). Names are what the CLI and the key
 * prefix use: lowercase letters, digits and `-`, so they never need quoting or escaping.
 */
import { z } from '@hono/zod-openapi';
import { KEY_SCOPES, type KeyScope } from '../../store/control-store.js';
import { dbText } from '../db-text.js';

const Timestamp = z.iso.datetime().openapi({ example: '2025-01-31T09:30:00.123Z' });

/** Text kept for people (a key's label): database text (db-text.ts), a 422 naming the field. */
const Label = dbText().min(1).max(200);

const EnvironmentName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, {
    message: 'must be 1–31 lowercase letters, digits and "-", starting with a letter or digit',
  })
  .openapi({ example: 'staging' });

const ProjectName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, {
    message: 'must be 1–63 lowercase letters, digits and "-", starting with a letter or digit',
  })
  .openapi({ example: 'billing' });

export const ScopeSchema = z.enum(KEY_SCOPES as [KeyScope, ...KeyScope[]]).openapi('KeyScope', {
  description:
    '`read`: GET routes. `trigger`: read, and start and steer runs (trigger, rerun, cancel, resume, complete waitpoints). `admin`: everything, including keys, environments, projects, schedules and webhooks.',
});

// ── keys ──────────────────────────────────────────────────────────────────────────────────────

export const ApiKeySchema = z
  .object({
    id: z.string().openapi({ example: 'key_01hq3v8x2k' }),
    prefix: z.string().openapi({
      description: 'The non-secret start of the key, to tell keys apart.',
      example: 'weft_dev_Ab12',
    }),
    label: z.string().nullable(),
    scopes: z.array(ScopeSchema),
    environment: z.string().openapi({ description: 'Name of the environment the key opens.' }),
    createdAt: Timestamp,
    revokedAt: Timestamp.nullable(),
  })
  .openapi('ApiKey');

export const ApiKeyListSchema = z.object({ data: z.array(ApiKeySchema) }).openapi('ApiKeyList');

export const CreatedApiKeySchema = z
  .object({
    id: z.string(),
    key: z.string().openapi({
      description:
        'The key itself: shown only in this response (only its hash is stored). Send it as `Authorization: Bearer <key>`.',
      example: 'weft_dev_Ab12cD34eF56gH78iJ90kL12mN34oP56',
    }),
    prefix: z.string(),
    label: z.string().nullable(),
    scopes: z.array(ScopeSchema),
    environment: z.string(),
    createdAt: Timestamp,
  })
  .openapi('CreatedApiKey');

export const CreateApiKeyBodySchema = z
  .strictObject({
    label: Label.optional().openapi({ description: 'A note on what the key is for.' }),
    scopes: z.array(ScopeSchema).min(1).max(3).optional().openapi({
      description: "What the key may do. Default `['trigger']`.",
    }),
    environment: EnvironmentName.optional().openapi({
      description: "An environment of the caller's project. Default: the caller's environment.",
    }),
  })
  .openapi('CreateApiKeyBody');

export const ListApiKeysQuerySchema = z.strictObject({
  environment: EnvironmentName.optional().openapi({
    param: { name: 'environment', in: 'query' },
    description: "An environment of the caller's project. Default: the caller's environment.",
  }),
});

export const KeyParamsSchema = z.object({
  keyId: dbText()
    .max(100)
    .openapi({ param: { name: 'keyId', in: 'path' }, example: 'key_01hq3v8x2k' }),
});

export const RevokedApiKeySchema = z
  .object({ id: z.string(), revoked: z.literal(true) })
  .openapi('RevokedApiKey');

// ── environments ──────────────────────────────────────────────────────────────────────────────

export const EnvironmentSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    paused: z.boolean().openapi({ description: 'This environment is paused.' }),
    projectPaused: z.boolean().openapi({
      description: 'Its project is paused (which pauses every environment of it).',
    }),
    current: z.boolean().openapi({ description: "The environment of the caller's key." }),
    createdAt: Timestamp,
  })
  .openapi('Environment');

export const EnvironmentListSchema = z
  .object({ data: z.array(EnvironmentSchema) })
  .openapi('EnvironmentList');

export const CreateEnvironmentBodySchema = z
  .strictObject({ name: EnvironmentName })
  .openapi('CreateEnvironmentBody');

export const EnvironmentParamsSchema = z.object({
  name: dbText()
    .max(100)
    .openapi({ param: { name: 'name', in: 'path' }, example: 'staging' }),
});

export const UpdateEnvironmentBodySchema = z
  .strictObject({
    paused: z.boolean().openapi({
      description:
        'true: triggers (API, webhooks, schedules, child runs) get 409 `environment_paused` and workers claim no step; steps already executing finish. false: everything goes on where it stopped.',
    }),
  })
  .openapi('UpdateEnvironmentBody');

// ── projects ──────────────────────────────────────────────────────────────────────────────────

const RetentionDays = z.number().int().min(1).max(36_500).nullable().openapi({
  description:
    "Days dataclip bodies are kept: the environment's workers wipe (hourly) the bodies of ended runs' dataclips older than this — ids, hashes and sizes stay, and a rerun that needs a wiped body gets 409 `dataclips_wiped`. null keeps them forever.",
});

export const ProjectSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    saveDataclips: z.boolean().openapi({
      description:
        'Store the bodies of inputs, outputs and states (false keeps only their hashes and sizes; new runs only).',
    }),
    retentionDays: z.number().int().nullable(),
    paused: z.boolean(),
    current: z.boolean().openapi({ description: "The project of the caller's key." }),
    createdAt: Timestamp,
  })
  .openapi('Project');

export const ProjectListSchema = z.object({ data: z.array(ProjectSchema) }).openapi('ProjectList');

export const CreateProjectBodySchema = z
  .strictObject({
    name: ProjectName,
    environment: EnvironmentName.optional().openapi({
      description: 'Name of the environment created with the project. Default `dev`.',
    }),
    saveDataclips: z.boolean().optional(),
    retentionDays: RetentionDays.optional(),
  })
  .openapi('CreateProjectBody');

export const CreatedProjectSchema = z
  .object({
    project: ProjectSchema,
    environment: EnvironmentSchema,
    key: CreatedApiKeySchema.openapi({
      description:
        'An admin key of the new environment, shown once: the project is managed with its own keys.',
    }),
  })
  .openapi('CreatedProject');

export const ProjectParamsSchema = z.object({
  name: dbText()
    .max(100)
    .openapi({ param: { name: 'name', in: 'path' }, example: 'default' }),
});

export const UpdateProjectBodySchema = z
  .strictObject({
    saveDataclips: z.boolean().optional(),
    retentionDays: RetentionDays.optional(),
    paused: z.boolean().optional().openapi({
      description: 'Pause (or resume) every environment of the project.',
    }),
  })
  .openapi('UpdateProjectBody');

// ── organization ──────────────────────────────────────────────────────────────────────────────

export const OrganizationSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    flags: z.record(z.string(), z.unknown()).openapi({
      description:
        'Feature flags of every project of the organization, e.g. `{ "runs.location": "b0" }` (new runs go to that run location).',
    }),
  })
  .openapi('Organization');

export const UpdateOrganizationBodySchema = z
  .strictObject({
    flags: z.strictObject({
      'runs.location': dbText().max(16).nullable().optional().openapi({
        description:
          'The run location new runs of the organization go to (one of the configured location tags); null: the default location. Existing runs stay where they are.',
      }),
    }),
  })
  .openapi('UpdateOrganizationBody');

export const CutoverBodySchema = z
  .strictObject({
    location: dbText().max(16).nullable().openapi({
      description:
        'The run location (a configured tag, see WEFT_LOCATIONS) new runs of the organization are minted into from now on; null: back to the default location. Existing runs stay where they are.',
      example: 'b1',
    }),
  })
  .openapi('CutoverBody');

export const CutoverSchema = z
  .object({
    organizationId: z.string(),
    location: z.string().openapi({ description: 'Where new runs go from now on.' }),
    previous: z.string().openapi({ description: 'Where new runs went before.' }),
    locations: z.array(z.string()).openapi({
      description: 'Every location the organization has minted into (what run listings read).',
    }),
  })
  .openapi('Cutover');
