-- Operations over the API: key scopes, paused environments and projects, and a NOTIFY that lets
-- every server process drop its control-plane caches as soon as a key, an environment, a project
-- or an organization changes (a revoked key is refused on the next request, whichever process
-- serves it).

-- A key has one or more scopes: `read` (GET routes), `trigger` (read, and starting and steering
-- runs), `admin` (everything, including keys, environments, projects, schedules and webhooks).
-- Keys made before scopes existed keep what they could do: `admin`.
alter table {{schema}}.api_keys
  add column scopes text[] not null default '{admin}'
    check (cardinality(scopes) > 0 and scopes <@ array['read', 'trigger', 'admin']::text[]);

-- A paused environment refuses triggers (409 environment_paused) and its workers claim nothing;
-- runs already started keep their state and go on after a resume. Pausing a project pauses all
-- of its environments (the environment's own flag is kept, so resuming the project restores it).
alter table {{schema}}.environments add column paused_at timestamptz;
alter table {{schema}}.projects add column paused_at timestamptz;

-- One notification per changing statement (not per row), after the change: the payload is the
-- schema, so processes of another Weft schema in the same database ignore it. These tables change
-- rarely (no per-request write such as a last-used timestamp), so the commit-time lock a notifying
-- transaction takes costs nothing measurable; workflow registration does not notify (the
-- current-version cache is short and invalidated in-process).
create function {{schema}}.notify_control_changed() returns trigger language plpgsql as $$
begin
  perform pg_notify('weft_control_changed', '{{schema}}');
  return null;
end
$$;

create trigger api_keys_changed after insert or update or delete on {{schema}}.api_keys
  for each statement execute function {{schema}}.notify_control_changed();
create trigger environments_changed after insert or update or delete on {{schema}}.environments
  for each statement execute function {{schema}}.notify_control_changed();
create trigger projects_changed after insert or update or delete on {{schema}}.projects
  for each statement execute function {{schema}}.notify_control_changed();
create trigger organizations_changed after insert or update or delete on {{schema}}.organizations
  for each statement execute function {{schema}}.notify_control_changed();
