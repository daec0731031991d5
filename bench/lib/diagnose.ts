/**
 * `--diagnose` around each repetition, for every system on PostgreSQL: rows written per table
 * (pg_stat_user_tables deltas of the system's database), WAL bytes (the pg_current_wal_lsn delta,
 * server-wide, and the share of it that belongs to this database, from pg_walinspect), and a
 * bare-commit baseline taken right after the repetition on the same database.
 *
 * Table statistics reach pg_stat_user_tables only when a backend flushes them: at most once a
 * second while busy, and an idle backend holds them up to 10 s (PGSTAT_IDLE_INTERVAL). So the
 * after-snapshot of the tables waits STATS_SETTLE_MS after the timed region (the WAL position is
 * read at once, before that wait). What the system's own idle work writes in that wait (pollers,
 * reapers) is counted with the repetition; that is why diagnose figures come from their own run.
 */
import type pg from 'pg';
import { connectHarnessClient } from './postgres.js';

export const STATS_SETTLE_MS = 11_000;
const BARE_TABLE = 'weft_bench_bare_commit';
const BARE_COMMITS = 200;

export interface TableCounts {
  inserts: number;
  updates: number;
  hotUpdates: number;
  deletes: number;
}

export interface RepDiagnosis {
  /** Rows written in the repetition, per table (only tables that changed). */
  tables: Record<string, TableCounts>;
  /** pg_current_wal_lsn delta over the timed region: every database on the server. */
  walBytes: number;
  /** WAL records of this database's transactions (pg_walinspect), when the extension is there. */
  ownWalBytes?: number;
  /**
   * The full-page images within ownWalBytes: the first change to a page after each checkpoint
   * writes the whole page, so this part grows with how often the (shared) server checkpoints.
   */
  ownWalFpiBytes?: number;
  /** Median of sequential one-row insert commits on this database, right after (chain only). */
  bareCommitMs?: number;
}

export interface DiagnoseMark {
  tables: Map<string, TableCounts>;
  lsn: string;
}

export class DiagnoseProbe {
  /** A temporary replication slot holding the WAL of the repetition under way (see holdWal). */
  private slot: string | undefined;

  private constructor(
    private readonly client: pg.Client,
    private readonly databaseOid: number,
    private readonly walinspect: boolean,
  ) {}

  static async open(url: string): Promise<DiagnoseProbe> {
    const client = await connectHarnessClient(url, 'diagnose');
    let walinspect = true;
    try {
      await client.query('create extension if not exists pg_walinspect');
    } catch {
      walinspect = false; // not installed on this server (contrib): the server-wide figure only
    }
    await client.query(
      `create table if not exists ${BARE_TABLE} (id bigint generated always as identity primary key, v integer not null)`,
    );
    const oid = await client.query<{ oid: number }>(
      'select oid::int as oid from pg_database where datname = current_database()',
    );
    return new DiagnoseProbe(client, oid.rows[0]!.oid, walinspect);
  }

  /**
   * The WAL position before a repetition, with the WAL from there on held until release: on a
   * busy shared server the checkpointer recycled segments within seconds, before pg_walinspect
   * could read them. A temporary physical slot of this connection holds them (dropped by
   * releaseWal, or by the server when the connection ends); without slots, nothing is held.
   */
  async holdWal(): Promise<string> {
    await this.releaseWal(); // a slot left by a repetition that failed
    if (this.walinspect) {
      const name = `weft_bench_${process.pid}_${Date.now()}`;
      try {
        await this.client.query('select pg_create_physical_replication_slot($1, true, true)', [
          name,
        ]);
        this.slot = name;
      } catch {
        // no free slot or not allowed: read what is still there
      }
    }
    return this.lsn();
  }

  async releaseWal(): Promise<void> {
    const slot = this.slot;
    this.slot = undefined;
    if (slot)
      await this.client.query('select pg_drop_replication_slot($1)', [slot]).catch(() => {});
  }

  async lsn(): Promise<string> {
    const r = await this.client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    return r.rows[0]!.lsn;
  }

  async tables(): Promise<Map<string, TableCounts>> {
    const r = await this.client.query<{
      name: string;
      ins: string;
      upd: string;
      hot: string;
      del: string;
    }>(
      `select schemaname || '.' || relname as name, n_tup_ins::text as ins, n_tup_upd::text as upd,
              n_tup_hot_upd::text as hot, n_tup_del::text as del
         from pg_stat_user_tables where relname <> $1`,
      [BARE_TABLE],
    );
    return new Map(
      r.rows.map((t) => [
        t.name,
        {
          inserts: Number(t.ins),
          updates: Number(t.upd),
          hotUpdates: Number(t.hot),
          deletes: Number(t.del),
        },
      ]),
    );
  }

  async mark(): Promise<DiagnoseMark> {
    return { tables: await this.tables(), lsn: await this.holdWal() };
  }

  /**
   * The WAL bytes between two positions written by transactions that touched this database (read
   * up to the flushed position: every commit the system waited for is flushed by then).
   */
  async ownWalBytes(
    from: string,
    to: string,
  ): Promise<{ bytes: number; fpiBytes: number } | undefined> {
    if (!this.walinspect) return undefined;
    const r = await this.client.query<{ bytes: string; fpi: string }>(
      `with r as (
         select xid, record_length, fpi_length, block_ref ~ ('rel [0-9]+/' || $3 || '/') as mine
           from pg_get_wal_records_info($1::pg_lsn, least($2::pg_lsn, pg_current_wal_flush_lsn()))
       ), x as (select distinct xid from r where mine and xid <> 0)
       select coalesce(sum(record_length), 0)::text as bytes, coalesce(sum(fpi_length), 0)::text as fpi
         from r where mine or (xid <> 0 and xid in (select xid from x))`,
      [from, to, String(this.databaseOid)],
    );
    return { bytes: Number(r.rows[0]!.bytes), fpiBytes: Number(r.rows[0]!.fpi) };
  }

  async bareCommitMs(): Promise<number> {
    const times: number[] = [];
    for (let i = 0; i < BARE_COMMITS; i++) {
      const t0 = performance.now();
      await this.client.query(`insert into ${BARE_TABLE} (v) values ($1)`, [i]);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return times[times.length >> 1]!;
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => {});
  }
}

export function tableDelta(
  before: Map<string, TableCounts>,
  after: Map<string, TableCounts>,
): Record<string, TableCounts> {
  const out: Record<string, TableCounts> = {};
  for (const [name, a] of after) {
    const b = before.get(name) ?? { inserts: 0, updates: 0, hotUpdates: 0, deletes: 0 };
    const d = {
      inserts: a.inserts - b.inserts,
      updates: a.updates - b.updates,
      hotUpdates: a.hotUpdates - b.hotUpdates,
      deletes: a.deletes - b.deletes,
    };
    if (d.inserts || d.updates || d.deletes) out[name] = d;
  }
  return out;
}

/** Bytes between two LSNs (`X/Y` hex). */
export function lsnBytes(from: string, to: string): number {
  const n = (lsn: string): bigint => {
    const [hi, lo] = lsn.split('/');
    return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
  };
  return Number(n(to) - n(from));
}
