/**
 * `weft webhooks create|list|delete`: clients of `/api/v1/webhooks`, so they work the same
 * against `weft dev` and a deployed server. The URL printed is the server's base URL plus the
 * webhook's path; the signing secret is printed once, at creation.
 */
import { ApiClient, resolveConnection } from './api-client.js';
import { resolveDataDir } from './local-state.js';
import { formatTable, formatTime, printJson } from './output.js';

export interface WebhookClientOptions {
  url?: string;
  apiKey?: string;
  dataDir?: string;
  json?: boolean;
}

interface ApiWebhook {
  id: string;
  workflowId: string;
  label: string | null;
  signed: boolean;
  enabled: boolean;
  path: string;
  createdAt: string;
  secret?: string | null;
}

function client(options: WebhookClientOptions): ApiClient {
  return new ApiClient(resolveConnection({ ...options, dataDir: resolveDataDir(options.dataDir) }));
}

export interface CreateWebhookOptions extends WebhookClientOptions {
  label?: string;
  signed?: boolean;
  secret?: string;
}

export async function runWebhooksCreate(
  workflowId: string,
  options: CreateWebhookOptions,
): Promise<void> {
  const api = client(options);
  const body: { workflowId: string; label?: string; signed?: boolean; secret?: string } = {
    workflowId,
  };
  if (options.label !== undefined) body.label = options.label;
  if (options.signed) body.signed = true;
  if (options.secret !== undefined) body.secret = options.secret;
  const { body: hook } = await api.post<ApiWebhook>('/webhooks', body);
  const url = `${api.connection.url}${hook.path}`;
  if (options.json) {
    printJson({ ...hook, url });
    return;
  }
  process.stdout.write(`Created webhook ${hook.id} for workflow ${hook.workflowId}.\n`);
  process.stdout.write(`URL (anyone with it can start runs; keep it secret):\n  ${url}\n`);
  if (hook.secret) {
    process.stdout.write(
      `Signing secret (shown once; requests need x-weft-signature: sha256=<hex HMAC-SHA256 of the body>):\n  ${hook.secret}\n`,
    );
  }
  process.stdout.write(
    `Try it: curl -X POST ${url} -H 'content-type: application/json' -d '{"hello":"world"}'\n`,
  );
}

export async function runWebhooksList(options: WebhookClientOptions): Promise<void> {
  const api = client(options);
  const { data } = await api.get<{ data: ApiWebhook[] }>('/webhooks');
  if (options.json) {
    printJson(data);
    return;
  }
  if (data.length === 0) {
    process.stdout.write(
      'No webhooks in this environment. Create one with: weft webhooks create <workflow>\n',
    );
    return;
  }
  process.stdout.write(
    `${formatTable(
      ['id', 'workflow', 'signed', 'enabled', 'label', 'created'],
      data.map((h) => [
        h.id,
        h.workflowId,
        h.signed ? 'yes' : 'no',
        h.enabled ? 'yes' : 'no',
        h.label,
        formatTime(h.createdAt),
      ]),
    )}\n`,
  );
}

export async function runWebhooksDelete(
  webhookId: string,
  options: WebhookClientOptions,
): Promise<void> {
  const api = client(options);
  await api.delete(`/webhooks/${encodeURIComponent(webhookId)}`);
  if (options.json) printJson({ id: webhookId, deleted: true });
  else process.stdout.write(`Deleted webhook ${webhookId}; requests to its URL now answer 404.\n`);
}
