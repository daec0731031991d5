/**
 * `weft orgs cutover <org> --location <tag>` and `weft orgs locations`: where an organization's new
 * runs are minted (docs/operations.md, "Cut an organization over and back"). Works on the database
 * (DATABASE_URL, else the weft dev folder) while servers and workers run: the flag's write
 * NOTIFYs every process, whose next trigger mints into the new location. The caller's own
 * organization can also be cut over through the API (POST /api/v1/organization/cutover).
 */
import { cutoverOrganization, mintLocation, readLocations } from '../engine/cutover.js';
import { quoteIdent } from '../store/migrator.js';
import { withDatabase, type DatabaseOptions } from './db-commands.js';
import { CliError, formatTable, printJson } from './output.js';

export interface OrgsOptions extends DatabaseOptions {
  json?: boolean;
}

/** `--location default` (or `--default`) sends new runs back to the default location. */
export async function runOrgsCutover(
  org: string,
  options: OrgsOptions & { location?: string; default?: boolean },
): Promise<void> {
  if (options.location === undefined && !options.default)
    throw new CliError(
      'say where new runs go: --location <tag> (a tag of WEFT_LOCATIONS), or --default to send them back to the default location.',
    );
  if (options.location !== undefined && options.default)
    throw new CliError('pass --location <tag> or --default, not both.');
  const location = options.default || options.location === 'default' ? null : options.location!;
  await withDatabase(options, async (_ops, stores) => {
    const id = await findOrganization(stores, org);
    const result = await cutoverOrganization(stores, id, location);
    if (options.json) return printJson(result);
    process.stdout.write(
      result.previous === result.location
        ? `Organization ${org} already mints new runs into location ${result.location}; nothing changed.\n`
        : `Organization ${org}: new runs go to location ${result.location} (was ${result.previous}). Existing runs stay where they are; listings read ${result.locations.join(', ')}.\n`,
    );
  });
}

/** Every organization, the location its new runs go to, and the locations it has runs in. */
export async function runOrgsLocations(options: OrgsOptions): Promise<void> {
  await withDatabase(options, async (_ops, stores) => {
    const rows = await stores.controlDb.query<{
      id: string;
      name: string;
      flags: Record<string, unknown>;
    }>(
      `select id, name, flags from ${quoteIdent(stores.schemas.control)}.organizations order by name`,
    );
    const list = rows.rows.map((r) => ({
      id: r.id,
      name: r.name,
      location: mintLocation(r.flags, stores.runs),
      locations: readLocations(r.flags, stores.runs),
    }));
    if (options.json)
      return printJson({
        configured: stores.listLocations().map((l) => ({
          tag: l.tag,
          schema: l.schema,
          default: l.isDefault,
          home: l.home,
        })),
        organizations: list,
      });
    process.stdout.write(
      formatTable(
        ['ORGANIZATION', 'ID', 'NEW RUNS', 'RUNS IN'],
        list.map((o) => [o.name, o.id, o.location, o.locations.join(', ')]),
      ) + '\n',
    );
  });
}

async function findOrganization(
  stores: Parameters<Parameters<typeof withDatabase>[1]>[1],
  org: string,
): Promise<string> {
  const rows = await stores.controlDb.query<{ id: string }>(
    `select id from ${quoteIdent(stores.schemas.control)}.organizations where id = $1 or name = $1`,
    [org],
  );
  if (rows.rows.length === 1) return rows.rows[0]!.id;
  const all = await stores.controlDb.query<{ name: string }>(
    `select name from ${quoteIdent(stores.schemas.control)}.organizations order by name limit 20`,
  );
  throw new CliError(
    rows.rows.length === 0
      ? `no organization "${org}" (by name or id). Organizations: ${all.rows.map((r) => r.name).join(', ') || 'none'}. \`weft orgs locations\` lists them.`
      : `"${org}" names several organizations; pass its id (\`weft orgs locations\` lists them).`,
  );
}
