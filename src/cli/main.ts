/**
 * The `weft` command. `bin/weft.js` calls `runCli` from the compiled copy of this file; the
 * tests run this file through tsx. Each command lives in its own module; this one only declares
 * the options and turns errors into a message and an exit status.
 *
 * Kept whole (about 700 lines): the declarative list of commands and their options (commander), one
 * place to read the whole CLI surface; each command's code is in its own module.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { WeftError } from '../core/errors.js';
import type { runRunsList, runRunsShow, runTrigger } from './api-commands.js';
import type {
  runRunsCancel,
  runRunsResume,
  runWaitpointsComplete,
  runWaitpointsList,
} from './control-commands.js';
import type {
  runEnvironmentsCreate,
  runEnvironmentsList,
  runEnvironmentsPause,
  runKeysCreate,
  runKeysList,
  runKeysRevoke,
  runProjectsCreate,
  runProjectsList,
  runProjectsSettings,
} from './admin-commands.js';
import type { runMigrate } from './db-commands.js';
import type { ReplicateCommandOptions } from './replicate-command.js';
import type { runOrgsCutover, runOrgsLocations } from './orgs-command.js';
import type { runDev } from './dev-command.js';
import type { runRunsFollow, runTriggerFollow } from './follow.js';
import { DEFAULT_DATA_DIR } from './local-state.js';
import { CliError } from './output.js';
import type { RerunOptions } from './rerun-command.js';
import type { runWorker } from './worker-command.js';
import type { ServerCommandOptions, StartCommandOptions } from './server-command.js';
import type {
  runSchedulesCreate,
  runSchedulesDelete,
  runSchedulesList,
} from './schedules-commands.js';
import type { runWebhooksCreate, runWebhooksDelete, runWebhooksList } from './webhooks-commands.js';

// Commands are imported when they run: `weft runs list` should not load PGlite, pg and the server.
const api = () => import('./api-commands.js');
const db = () => import('./db-commands.js');
const DEFAULT_DEV_PORT = 3700;

const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
];

function version(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildProgram(): Command {
  const program = new Command('weft')
    .description('Weft: durable workflows for TypeScript. `weft dev` starts everything locally.')
    .version(version(), '-v, --version')
    // Program options only before the command: `weft runs resume <id> --version current` is
    // the command's own --version, not the program's.
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false });

  const dataDirOption = () =>
    new Option(
      '--data-dir <dir>',
      `folder of weft dev: database in <dir>/db, key in <dir>/dev.json (env WEFT_DATA_DIR; default ${DEFAULT_DATA_DIR})`,
    );
  const workflowsOption = () =>
    new Option(
      '--workflows <path>',
      'a workflow module, a folder of modules, or a glob (repeatable); default: weft.config.ts, else the bundled examples',
    ).argParser(collect);
  const configOption = () =>
    new Option(
      '--config <file>',
      'config file exporting { workflows: [...] } (default: ./weft.config.ts when present)',
    );
  const logOptions = (cmd: Command, format: string) =>
    cmd
      .addOption(new Option('--log-format <format>', `pretty or json (default ${format})`))
      .addOption(
        new Option(
          '--log-level <level>',
          'trace, debug, info, warn or error (env WEFT_LOG_LEVEL; default info)',
        ),
      );

  logOptions(
    program
      .command('dev')
      .description(
        'Run Weft locally: embedded database, API server, worker and your workflows, reloaded on change',
      )
      .option(
        '-p, --port <port>',
        `port of the API server (env WEFT_PORT; default ${DEFAULT_DEV_PORT}; 0 = any free port)`,
      )
      .option('--host <host>', 'interface to listen on', '127.0.0.1')
      .addOption(dataDirOption())
      .addOption(workflowsOption())
      .addOption(configOption())
      .option(
        '--environment <name>',
        'environment of project "default" to serve; created when missing (default dev)',
      )
      .option('--no-watch', 'do not reload the workflows when their files change')
      .option('--concurrency <n>', 'steps executed at once', '10'),
    'pretty',
  ).action(async (options: Parameters<typeof runDev>[0]) =>
    (await import('./dev-command.js')).runDev(options),
  );

  // `weft worker`'s options; `weft start` takes them too.
  const workerOptions = (cmd: Command) =>
    cmd
      .option('--database-url <url>', 'overrides DATABASE_URL')
      .option('--project <name>', 'project of the environment to work for', 'default')
      .option('--environment <name>', 'environment to work for', 'dev')
      .addOption(workflowsOption())
      .addOption(configOption())
      .option('--concurrency <n>', 'steps executed at once', '10')
      .option(
        '--drain-timeout <duration>',
        'on SIGTERM, how long running steps may finish before they are aborted and requeued',
        '30s',
      )
      .option(
        '--metrics-port <port>',
        "serve this worker's Prometheus metrics (claim latency, step durations, failures) on GET /metrics",
      )
      .option(
        '--metrics-host <host>',
        'interface for --metrics-port (keep it internal)',
        '127.0.0.1',
      )
      .option(
        '--connect-timeout <duration>',
        'at startup, how long to wait for the database to accept connections (env WEFT_CONNECT_TIMEOUT; default 60s, 0 fails at once)',
      )
      .option(
        '--lease <duration>',
        "how long a claimed step stays this worker's without renewal; a crashed worker's steps are retried after it (env WEFT_LEASE; default 30s)",
      )
      .option(
        '--heartbeat <duration>',
        'how often leases are renewed, at most half the lease (env WEFT_HEARTBEAT; default a third of the lease)',
      )
      .option(
        '--reaper-interval <duration>',
        'how often this process requeues steps whose lease expired, or "off" (env WEFT_REAPER_INTERVAL; default 5s)',
      );

  logOptions(
    workerOptions(
      program
        .command('worker')
        .description(
          'Run a worker against PostgreSQL (DATABASE_URL, optional RUN_OPS_DATABASE_URL); SIGTERM drains it',
        ),
    ),
    'json',
  ).action(async (options: Parameters<typeof runWorker>[0]) =>
    (await import('./worker-command.js')).runWorker(options),
  );

  // `weft server`'s options; `weft start` adds them to the worker's (which have the database
  // URL and a drain timeout for both).
  const serverOptions = (cmd: Command) =>
    cmd
      .option(
        '--host <host>',
        'interface to listen on (env WEFT_HOST; default 127.0.0.1; 0.0.0.0 = every interface)',
      )
      .option(
        '-p, --port <port>',
        'port (env WEFT_PORT, then PORT; default 3700; 0 = any free port)',
      )
      .option(
        '--trust-proxy',
        'behind a proxy that sets X-Forwarded-For/-Proto: log the client address and scheme from them (env WEFT_TRUST_PROXY=1)',
      )
      .addOption(
        new Option(
          '--cors-origin <origin>',
          'allow browser calls from this origin, e.g. https://admin.example.com, or * (repeatable; env WEFT_CORS_ORIGINS, comma-separated; default none)',
        ).argParser(collect),
      )
      .option(
        '--max-body <size>',
        'largest request body: bytes, or with kb/mb (env WEFT_MAX_BODY; default 10mb + 64kb)',
      )
      .option(
        '--request-timeout <duration>',
        'answer 503 to a request not served within this (env WEFT_REQUEST_TIMEOUT; default 30s; 0 = off)',
      )
      .option(
        '--keep-alive-timeout <duration>',
        'idle keep-alive connections close after this; keep it above the load balancer’s idle timeout (env WEFT_KEEP_ALIVE_TIMEOUT; default 65s)',
      )
      .option(
        '--pool-size <n>',
        'database connections of this process (env WEFT_POOL_SIZE; default 10)',
      )
      .option(
        '--rate-limit <rate>',
        'requests per API key in this process, e.g. 20/s, 600/min, 20/s,burst=50; over it: 429 with Retry-After (env WEFT_RATE_LIMIT; default off)',
      );

  logOptions(
    serverOptions(
      program
        .command('server')
        .description(
          'Serve the HTTP API and dashboard on PostgreSQL (DATABASE_URL, optional RUN_OPS_DATABASE_URL); run as many as you like behind a load balancer; SIGTERM drains. Flags win over their environment variables.',
        )
        .option('--database-url <url>', 'overrides DATABASE_URL')
        .option(
          '--replicate',
          'also run the analytics replicator in this process (as `weft replicate`; needs WEFT_CLICKHOUSE_URL)',
        )
        .option(
          '--drain-timeout <duration>',
          'on SIGTERM, how long open requests may finish before their connections are cut (env WEFT_DRAIN_TIMEOUT; default 20s)',
        ),
    ),
    'json',
  ).action(async (options: ServerCommandOptions) =>
    (await import('./server-command.js')).runServer(options),
  );

  logOptions(
    serverOptions(
      workerOptions(
        program
          .command('start')
          .description(
            'Server and worker in one process, for small installs: the API (as weft server) and your workflows (as weft worker) on PostgreSQL; SIGTERM drains both. Flags win over their environment variables.',
          ),
      ),
    ),
    'json',
  ).action(async (options: StartCommandOptions) =>
    (await import('./server-command.js')).runStart(options),
  );

  program
    .command('replicate')
    .description(
      'Analytics mirror (docs/analytics.md): stream the run tables of every location (WEFT_LOCATIONS) into ClickHouse (WEFT_CLICKHOUSE_URL) by logical replication; `weft replicate status` shows the lag. Needs wal_level = logical.',
    )
    .argument('[what]', '`status`: the slot, ClickHouse position and lag of each run-ops database')
    .option('--database-url <url>', 'overrides DATABASE_URL')
    .option('--clickhouse-url <url>', 'overrides WEFT_CLICKHOUSE_URL (HTTP interface)')
    .option('--rebuild', 'drop the slot and the mirrored rows of these locations, then copy again')
    .option('--batch-rows <n>', 'rows per ClickHouse insert at most (default 5000)')
    .option(
      '--metrics-port <port>',
      'serve GET /metrics (lag gauges) on this port (env WEFT_REPLICATE_METRICS_PORT)',
    )
    .option('--json', 'machine-readable output (status)')
    .action(async (what: string | undefined, options: ReplicateCommandOptions) =>
      (await import('./replicate-command.js')).runReplicate(what, options),
    );

  program
    .command('migrate')
    .description(
      'Apply the database migrations to DATABASE_URL (and RUN_OPS_DATABASE_URL when set)',
    )
    .option('--database-url <url>', 'overrides DATABASE_URL')
    .option('--json', 'machine-readable output')
    .action(async (options: Parameters<typeof runMigrate>[0]) => (await db()).runMigrate(options));

  const clientOptions = (cmd: Command) =>
    cmd
      .option('--url <url>', 'API base URL (env WEFT_URL; default: the running weft dev)')
      .option('--api-key <key>', 'API key (env WEFT_API_KEY; default: the key of weft dev)')
      .addOption(dataDirOption())
      .option('--json', 'machine-readable output');

  clientOptions(
    program
      .command('trigger')
      .description('Start a run of a workflow')
      .argument('<workflow>', 'workflow id')
      .option('-i, --input <json>', 'the run input, as JSON')
      .option('--input-file <file>', 'read the input JSON from a file (- for stdin)')
      .option(
        '--batch <file>',
        'start one run per input in the file: JSON Lines or one JSON array (- for stdin)',
      )
      .option(
        '--idempotency-key <key>',
        'start at most one run for this key (the existing run is returned)',
      )
      .option('-w, --wait', 'wait until the run finishes and print its output')
      .option('--timeout <duration>', 'with --wait: how long to wait', '5m')
      .option(
        '-f, --follow',
        'show the run live, step by step, until it ends (exit 1 unless it succeeds)',
      ),
  ).action(async (workflow: string, options: Parameters<typeof runTriggerFollow>[1]) => {
    const batch = (options as { batch?: string }).batch;
    if (batch !== undefined && options.follow)
      throw new CliError('--batch starts many runs; --follow shows one. Drop one of them.');
    if (batch !== undefined)
      return (await api()).runTriggerBatch(workflow, options as Parameters<typeof runTrigger>[1]);
    return options.follow
      ? (await import('./follow.js')).runTriggerFollow(workflow, options)
      : (await api()).runTrigger(workflow, options as Parameters<typeof runTrigger>[1]);
  });

  const runs = program.command('runs').description('Inspect runs');
  clientOptions(
    runs
      .command('list')
      .description('List runs, newest first')
      .option('--workflow <id>', 'only runs of this workflow')
      .addOption(
        new Option('--status <status>', 'only runs with this status (repeatable)').argParser(
          collect,
        ),
      )
      .option('--limit <n>', 'runs per page (≤ 100)')
      .option('--cursor <cursor>', 'the page after this cursor (printed under a full page)'),
  ).action(async (options: Parameters<typeof runRunsList>[0]) =>
    (await api()).runRunsList(options),
  );
  clientOptions(
    runs
      .command('show')
      .description('Show a run: status, steps, attempts, output')
      .argument('<runId>'),
  ).action(async (runId: string, options: Parameters<typeof runRunsShow>[1]) =>
    (await api()).runRunsShow(runId, options),
  );
  const control = () => import('./control-commands.js');
  clientOptions(
    runs
      .command('follow')
      .description('Show a run live, step by step, until it ends (exit 1 unless it succeeds)')
      .argument('<runId>'),
  ).action(async (runId: string, options: Parameters<typeof runRunsFollow>[1]) =>
    (await import('./follow.js')).runRunsFollow(runId, options),
  );
  clientOptions(runs.command('cancel').description('Cancel a run').argument('<runId>')).action(
    async (runId: string, options: Parameters<typeof runRunsCancel>[1]) =>
      (await control()).runRunsCancel(runId, options),
  );
  clientOptions(
    runs
      .command('resume')
      .description('Resume a run paused after a step exhausted its retries')
      .argument('<runId>')
      .option('--version <version>', 'original (default) or current: the fixed, deployed version'),
  ).action(async (runId: string, options: Parameters<typeof runRunsResume>[1]) =>
    (await control()).runRunsResume(runId, options),
  );
  const waitpoints = program
    .command('waitpoints')
    .description('List what runs wait on; complete approvals');
  clientOptions(
    waitpoints
      .command('list')
      .description(
        'Waiting waitpoints (approval tokens, sleeps, child runs) of every waiting run, or of one run',
      )
      .option('--run <runId>', 'only this run (its completed waitpoints too with --all)')
      .option('--all', 'also completed, timed out and canceled waitpoints'),
  ).action(async (options: Parameters<typeof runWaitpointsList>[0]) =>
    (await control()).runWaitpointsList(options),
  );
  clientOptions(
    waitpoints
      .command('complete')
      .description('Complete an approval token; the waiting step goes on with the payload')
      .argument('<token>', 'the waitpoint token (wp_…), shown by weft runs follow')
      .option('--payload <json>', 'the payload, as JSON (default null)'),
  ).action(async (token: string, options: Parameters<typeof runWaitpointsComplete>[1]) =>
    (await control()).runWaitpointsComplete(token, options),
  );
  clientOptions(
    runs
      .command('rerun')
      .description(
        'Rerun a run from a step, reusing every result that did not change; or, with --failed, every failed run of a workflow',
      )
      .argument('[runId]', 'the run to rerun (omit with --failed)')
      .option(
        '--from <step>',
        'the step to run again (and everything after it); `s[3]`: one iteration',
      )
      .option('--until <step>', 'stop after this step')
      .option('--version <version>', '"original" (default) or "current"')
      .option('-i, --input <json>', 'a new run input, as JSON (default: the source run’s)')
      .option('--failed', 'rerun every failed run of --workflow, each from its failed step (bulk)')
      .option('--workflow <id>', 'with --failed: the workflow')
      .option('--since <time>', 'with --failed: runs created since (ISO time, or 2h, 1d back)')
      .option('--dry-run', 'print the plan (with --failed: the summary) and start nothing'),
  ).action(async (runId: string | undefined, options: RerunOptions) =>
    (await import('./rerun-command.js')).runRunsRerun(runId, options),
  );

  const webhooks = program
    .command('webhooks')
    .description(
      'Manage webhooks: URLs that start a run of a workflow with the HTTP request as input',
    );
  const hooks = () => import('./webhooks-commands.js');
  clientOptions(
    webhooks
      .command('create')
      .description('Create a webhook for a workflow and print its URL')
      .argument('<workflow>', 'workflow id')
      .option('--label <label>', 'a note on what the webhook is for')
      .option('--signed', 'require signed requests; a secret is generated and shown once')
      .option('--secret <secret>', 'require requests signed with this secret (16+ characters)'),
  ).action(async (workflow: string, options: Parameters<typeof runWebhooksCreate>[1]) =>
    (await hooks()).runWebhooksCreate(workflow, options),
  );
  clientOptions(
    webhooks.command('list').description('List the webhooks of the environment'),
  ).action(async (options: Parameters<typeof runWebhooksList>[0]) =>
    (await hooks()).runWebhooksList(options),
  );
  clientOptions(
    webhooks.command('delete').description('Delete a webhook').argument('<webhookId>'),
  ).action(async (webhookId: string, options: Parameters<typeof runWebhooksDelete>[1]) =>
    (await hooks()).runWebhooksDelete(webhookId, options),
  );

  const schedules = program
    .command('schedules')
    .description(
      'Manage cron schedules: runs of a workflow fired on a cron expression in a time zone',
    );
  const sched = () => import('./schedules-commands.js');
  clientOptions(
    schedules
      .command('create')
      .description('Create a schedule for a workflow')
      .argument('<workflow>', 'workflow id')
      .requiredOption(
        '--cron <expression>',
        'cron expression, e.g. "0 9 * * 1-5" (5 fields, or 6 with seconds)',
      )
      .option('--timezone <zone>', 'IANA time zone, e.g. Europe/London (default UTC)')
      .option('--input <json>', 'static input of every run (JSON)')
      .option(
        '--input-mode <mode>',
        'none | static | previous_final_state | previous_step_output (with --step)',
      )
      .option('--step <step>', 'the step whose previous output is the input')
      .option('--count-manual-runs', 'manual and API runs count as "previous"')
      .option('--overlap <policy>', 'allow | skip | queue | cancel_previous (default allow)')
      .option('--catch-up <policy>', 'none | last | all after downtime (default none)')
      .option('--catch-up-limit <n>', 'most missed slots fired with --catch-up all (default 10)')
      .option('--disabled', 'create it disabled'),
  ).action(async (workflow: string, options: Parameters<typeof runSchedulesCreate>[1]) =>
    (await sched()).runSchedulesCreate(workflow, options),
  );
  clientOptions(
    schedules.command('list').description('List the schedules of the environment'),
  ).action(async (options: Parameters<typeof runSchedulesList>[0]) =>
    (await sched()).runSchedulesList(options),
  );
  clientOptions(
    schedules.command('delete').description('Delete a schedule').argument('<scheduleId>'),
  ).action(async (scheduleId: string, options: Parameters<typeof runSchedulesDelete>[1]) =>
    (await sched()).runSchedulesDelete(scheduleId, options),
  );

  program
    .command('secrets')
    .description('Secrets at rest (webhook signing secrets, sealed with WEFT_SECRET_KEY)')
    .command('rotate')
    .description(
      'Re-encrypt every webhook secret with WEFT_SECRET_KEY, opening old ones with WEFT_SECRET_KEY_PREVIOUS; then the previous key can go. Safe while servers run.',
    )
    .option('--database-url <url>', 'overrides DATABASE_URL (else the weft dev folder)')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (options: { databaseUrl?: string; dataDir?: string; json?: boolean }) =>
      (await import('./secrets-command.js')).runSecretsRotate(options),
    );

  // Keys, environments, projects: the API of a reachable server, else the database.
  const ops = () => import('./admin-commands.js');
  const opsOptions = (cmd: Command) =>
    cmd
      .option('--url <url>', 'API base URL (env WEFT_URL; default: the running weft dev)')
      .option(
        '--api-key <key>',
        'an admin API key (env WEFT_API_KEY; default: the key of weft dev)',
      )
      .option(
        '--database-url <url>',
        'work on this database directly (else DATABASE_URL or the weft dev folder, when no server is reachable)',
      )
      .addOption(dataDirOption())
      .option(
        '--project <name>',
        'project, on the database (the API uses the key’s own; default "default")',
      )
      .option('--json', 'machine-readable output');
  const keys = program
    .command('keys')
    .description(
      'Manage API keys: through a reachable server (WEFT_URL, --url, weft dev), else in the database',
    );
  opsOptions(
    keys
      .command('create')
      .description('Create an API key (shown once)')
      .addOption(
        new Option(
          '--scope <scope>',
          'read, trigger or admin (repeatable; default trigger)',
        ).argParser(collect),
      )
      .option('--environment <name>', 'environment of the key (default: the admin key’s, or dev)')
      .option('--label <label>', 'a note on what the key is for'),
  ).action(async (options: Parameters<typeof runKeysCreate>[0]) =>
    (await ops()).runKeysCreate(options),
  );
  opsOptions(keys.command('revoke').description('Revoke an API key').argument('<keyId>')).action(
    async (keyId: string, options: Parameters<typeof runKeysRevoke>[1]) =>
      (await ops()).runKeysRevoke(keyId, options),
  );
  opsOptions(
    keys
      .command('list')
      .description('List the API keys of an environment (prefixes only)')
      .option('--environment <name>', 'environment (default: the admin key’s, or dev)'),
  ).action(async (options: Parameters<typeof runKeysList>[0]) =>
    (await ops()).runKeysList(options),
  );

  const environments = program
    .command('environments')
    .description('Create, list, pause and resume environments (same routing as weft keys)');
  opsOptions(
    environments.command('list').description('List the environments of the project'),
  ).action(async (options: Parameters<typeof runEnvironmentsList>[0]) =>
    (await ops()).runEnvironmentsList(options),
  );
  opsOptions(
    environments.command('create').description('Create an environment').argument('<name>'),
  ).action(async (name: string, options: Parameters<typeof runEnvironmentsCreate>[1]) =>
    (await ops()).runEnvironmentsCreate(name, options),
  );
  opsOptions(
    environments
      .command('pause')
      .description('Refuse triggers (409) and stop claiming steps until resumed')
      .argument('<name>'),
  ).action(async (name: string, options: Parameters<typeof runEnvironmentsPause>[2]) =>
    (await ops()).runEnvironmentsPause(name, true, options),
  );
  opsOptions(
    environments.command('resume').description('Resume a paused environment').argument('<name>'),
  ).action(async (name: string, options: Parameters<typeof runEnvironmentsPause>[2]) =>
    (await ops()).runEnvironmentsPause(name, false, options),
  );
  opsOptions(
    environments
      .command('delete')
      .description(
        'Delete an environment: keys, workflows, schedules, webhooks at once; its run data by cleanup jobs (nothing archived)',
      )
      .argument('<name>')
      .option('--yes', 'confirm: its runs are deleted, not archived'),
  ).action(async (name: string, options: { yes?: boolean }) =>
    (await ops()).runTenantDelete('environment', name, options),
  );

  const projects = program
    .command('projects')
    .description('Create and list projects, change their settings (same routing as weft keys)');
  opsOptions(
    projects
      .command('delete')
      .description(
        'Delete a project and its environments; their run data by cleanup jobs (nothing archived)',
      )
      .argument('<name>')
      .option('--yes', 'confirm: its runs are deleted, not archived'),
  ).action(async (name: string, options: { yes?: boolean }) =>
    (await ops()).runTenantDelete('project', name, options),
  );
  opsOptions(projects.command('list').description('List the projects of the organization')).action(
    async (options: Parameters<typeof runProjectsList>[0]) =>
      (await ops()).runProjectsList(options),
  );
  opsOptions(
    projects
      .command('create')
      .description('Create a project, its first environment and an admin key for it (shown once)')
      .argument('<name>')
      .option('--environment <name>', 'its first environment', 'dev')
      .option('--save-dataclips <bool>', 'keep input and output bodies (default true)')
      .option('--retention-days <days>', 'days bodies are meant to be kept, or "forever"'),
  ).action(async (name: string, options: Parameters<typeof runProjectsCreate>[1]) =>
    (await ops()).runProjectsCreate(name, options),
  );
  opsOptions(
    projects
      .command('settings')
      .description('Show or change project settings (default: the admin key’s project)')
      .argument('[name]')
      .option('--save-dataclips <bool>', 'keep input and output bodies of new runs (true/false)')
      .option('--retention-days <days>', 'days bodies are meant to be kept, or "forever"')
      .option('--pause', 'pause every environment of the project')
      .option('--resume', 'resume the project'),
  ).action(async (name: string | undefined, options: Parameters<typeof runProjectsSettings>[1]) =>
    (await ops()).runProjectsSettings(name, options),
  );
  // Run locations (docs/operations.md): on the database, like weft migrate.
  const orgs = () => import('./orgs-command.js');
  const orgsCommand = program
    .command('orgs')
    .description('Organizations: where their new runs are minted (run locations, WEFT_LOCATIONS)');
  orgsCommand
    .command('cutover')
    .description(
      'Mint the organization’s new runs into another location (existing runs stay); --default: back',
    )
    .argument('<org>', 'organization name or id')
    .option('--location <tag>', 'a location tag of WEFT_LOCATIONS ("default": the default)')
    .option('--default', 'send new runs back to the default location (WEFT_DEFAULT_LOCATION)')
    .option('--database-url <url>', 'overrides DATABASE_URL (else the weft dev folder)')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (org: string, options: Parameters<typeof runOrgsCutover>[1]) =>
      (await orgs()).runOrgsCutover(org, options),
    );
  orgsCommand
    .command('locations')
    .description('Each organization, where its new runs go, and the locations it has runs in')
    .option('--database-url <url>', 'overrides DATABASE_URL (else the weft dev folder)')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (options: Parameters<typeof runOrgsLocations>[0]) =>
      (await orgs()).runOrgsLocations(options),
    );
  program.addHelpText(
    'after',
    `
Quick start:
  weft dev                                  API, worker and the example workflows on http://127.0.0.1:${DEFAULT_DEV_PORT}
  weft dev --workflows ./src/workflows      your own workflows (TypeScript), reloaded on save
  weft trigger welcome-email --input '{"email":"ada@example.com","name":"Ada"}' --wait
  weft runs list
  weft runs show <runId>
  weft runs follow <runId>                  the run live, step by step

Production (PostgreSQL):
  DATABASE_URL=postgres://… weft migrate
  DATABASE_URL=postgres://… weft keys create --scope admin --environment prod --label ops
  DATABASE_URL=postgres://… weft server --host 0.0.0.0 --port 3700
  DATABASE_URL=postgres://… weft worker --workflows ./dist/workflows --environment prod`,
  );
  return program;
}

/** Run the CLI with `argv` (as in process.argv). Sets process.exitCode on failure. */
export async function runCli(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (error) {
    process.stderr.write(`weft: ${formatError(error)}\n`);
    process.exitCode = error instanceof CliError ? error.exitCode : 1;
  }
}

function formatError(error: unknown): string {
  if (error instanceof CliError) return error.message;
  if (error instanceof WeftError) return `${error.code}: ${error.message}`;
  if (error instanceof Error)
    return process.env.WEFT_DEBUG
      ? (error.stack ?? error.message)
      : `${error.message} (set WEFT_DEBUG=1 for the stack trace)`;
  return String(error);
}

// Run directly (`tsx src/cli/main.ts …`, as the tests do); bin/weft.js imports runCli instead.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) {
  await runCli(process.argv);
}
