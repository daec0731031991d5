/**
 * Run events: the per-run event log read by id or after a cursor, the settled read an SSE cursor
 * needs, and the watcher registrations that make each committed event NOTIFY `weft_events`.
 */
import type { RunEventRecord } from '../rows.js';
import { iso, type Row } from './decoders.js';
import type { RunResources } from './resources.js';

/**
 * A run's event log after a cursor: the `run_events` rows; the `step.started` event of each
 * attempt; and the `step.succeeded` event of each step that patched no state (location 0010: a
 * chained step writes no event row; each event id comes from the run_events id sequence, so all
 * share one order). An attempt's `step.started` is its row in `attempt_rows` once it has ended
 * otherwise than in success, and until then, or when it succeeded, its step run's columns
 * (location 0016: attempt_event_id, attempt_worker, attempt_started_at; a step run `running` or
 * `succeeded` has no row for its current attempt, any other status means that attempt's end wrote
 * one). The `step.succeeded` of a step run is its event_id.
 * Parameters: $1 run id, $3 the cursor. Rows of earlier releases have no event ids: their events
 * are run_events rows. Cost: a merge of ordered index scans, run_events_run (run_id, id),
 * attempts_run_event (run_id, event_id) and step_runs_event_log (run_id, the step run's last
 * event id: a success follows its attempt's start, so a step run with either event after the
 * cursor is in that index's range), cut by the caller's limit.
 */
function eventLog(schema: string): string {
  return `select x.id, x.run_id, x.kind, x.step_key, x.attempt, x.data, x.created_at
            from ${schema}.run_events x where x.run_id = $1 and x.id > $3
          union all
          select a.event_id, a.run_id, 'step.started', a.step_key, a.number,
                 jsonb_build_object('worker', a.worker_id), a.started_at
            from ${schema}.attempt_rows a where a.run_id = $1 and a.event_id > $3
          union all
          select s.attempt_event_id, s.run_id, 'step.started', s.step_key, s.attempt_count,
                 jsonb_build_object('worker', s.attempt_worker), s.attempt_started_at
            from ${schema}.step_runs s
           where s.run_id = $1 and coalesce(s.event_id, s.attempt_event_id) > $3
             and s.attempt_event_id > $3 and s.status in ('running', 'succeeded')
          union all
          select s.event_id, s.run_id, 'step.succeeded', s.step_key, s.attempt_count,
                 jsonb_build_object('outputDataclipId', s.output_dataclip_id, 'statePatch', null),
                 s.finished_at
            from ${schema}.step_runs s
           where s.run_id = $1 and coalesce(s.event_id, s.attempt_event_id) > $3 and s.event_id > $3`;
}

export class RunEvents {
  constructor(private readonly r: RunResources) {}

  async listRunEvents(
    environmentId: string,
    runId: string,
    afterId = 0,
    limit = 1000,
  ): Promise<RunEventRecord[] | undefined> {
    const loc = this.r.locationOf(runId);
    if (!loc) return undefined;
    const rows = await loc.db.query<Row>(
      `select e.id::text as id, e.run_id, e.kind, e.step_key, e.attempt, e.data, e.created_at
         from (${eventLog(loc.schema)}) e
        where exists (select 1 from ${loc.schema}.runs r where r.id = $1 and r.environment_id = $2)
        order by e.id limit $4`,
      [runId, environmentId, afterId, limit],
    );
    return rows.rows.map((r) => ({
      id: r.id as string,
      runId: r.run_id as string,
      kind: r.kind as string,
      stepKey: (r.step_key as string | null) ?? null,
      attempt: r.attempt === null ? null : Number(r.attempt),
      data: r.data ?? null,
      createdAt: iso(r.created_at),
    }));
  }

  /**
   * Register interest in a run's live events until `ttlMs` from now: while registered, the
   * commit of each of its events sends NOTIFY `weft_events` (location migration 0002). Renew
   * before it expires; a server that dies simply stops renewing. Expired registrations of the
   * location are deleted on the way.
   */
  async watchRunEvents(runIds: string[], watcherId: string, ttlMs: number): Promise<void> {
    const byLoc = this.r.groupByLocation(runIds);
    await Promise.all(
      [...byLoc].map(([loc, ids]) =>
        loc.db.query(
          `with swept as (
             delete from ${loc.schema}.run_event_watchers where expires_at < now() - interval '1 minute'
           ), flagged as (
             -- the claim rule reads this from the run row it joins anyway (location 0015)
             update ${loc.schema}.runs set watched_until = now() + $3 * interval '1 millisecond'
              where id = any($1::text[])
           )
           insert into ${loc.schema}.run_event_watchers (run_id, watcher_id, expires_at)
           select unnest($1::text[]), $2, now() + $3 * interval '1 millisecond'
           on conflict (run_id, watcher_id) do update set expires_at = excluded.expires_at`,
          [ids, watcherId, ttlMs],
        ),
      ),
    );
  }

  /**
   * Like listRunEvents, but only events no concurrent transaction can still slip in front of —
   * what a cursor (SSE `Last-Event-ID`) needs. Ids are allocated at insert, not at commit: two
   * transactions writing events of one run (parallel branches) can commit out of id order, and
   * a plain read between the commits would move a cursor past the lower id for good. So the
   * read also takes its snapshot; if transactions were in flight then, it waits (up to
   * `maxWaitMs`, polling their status) until they have ended, and returns the events up to the
   * last id of the first read, re-read: the late ones included. PGlite runs one transaction at
   * a time, so there the plain read is already settled.
   */
  async listSettledRunEvents(
    environmentId: string,
    runId: string,
    afterId = 0,
    limit = 1000,
    maxWaitMs = 2000,
  ): Promise<RunEventRecord[] | undefined> {
    const loc = this.r.locationOf(runId);
    if (!loc) return undefined;
    if (loc.db.kind === 'pglite') return this.listRunEvents(environmentId, runId, afterId, limit);
    const first = await loc.db.query<{ last: string | null; busy: boolean }>(
      `with page as (
         select e.id from (${eventLog(loc.schema)}) e
          where exists (select 1 from ${loc.schema}.runs r where r.id = $1 and r.environment_id = $2)
          order by e.id limit $4
       )
       select (select max(id) from page)::text as last,
              exists (select 1 from pg_snapshot_xip(pg_current_snapshot()) x
                       where x <> coalesce(pg_current_xact_id_if_assigned(), '0'::xid8)) as busy,
              pg_current_snapshot()::text as snapshot`,
      [runId, environmentId, afterId, limit],
    );
    const row = first.rows[0] as { last: string | null; busy: boolean; snapshot: string };
    if (row.last === null) return [];
    if (row.busy) {
      const deadline = Date.now() + maxWaitMs;
      for (;;) {
        const status = await loc.db.query<{ busy: boolean }>(
          `select exists (select 1 from pg_snapshot_xip($1::pg_snapshot) x
                           where pg_xact_status(x) = 'in progress') as busy`,
          [row.snapshot],
        );
        if (!status.rows[0]?.busy || Date.now() >= deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    const upTo = Number(row.last);
    const events = await this.listRunEvents(environmentId, runId, afterId, limit);
    return events?.filter((e) => Number(e.id) <= upTo);
  }

  async unwatchRunEvents(runId: string, watcherId: string): Promise<void> {
    const loc = this.r.locationOf(runId);
    if (!loc) return;
    await loc.db.query(
      `delete from ${loc.schema}.run_event_watchers where run_id = $1 and watcher_id = $2`,
      [runId, watcherId],
    );
  }
}
