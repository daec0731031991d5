/**
 * The replicator's buffer: `pgoutput` messages in, ClickHouse rows out. Changes of the open
 * transaction are held apart until its commit, so a batch always ends on a commit boundary and the
 * commit LSN it carries is safe to acknowledge once ClickHouse holds the batch. Nothing here
 * survives a restart of the stream (reset()): the slot sends whatever was not acknowledged again.
 */
import type { Clickhouse } from './clickhouse.js';
import { lsnToBigInt, MIRROR_TABLES, toMirrorRow, type MirrorTable } from './mirror-tables.js';
import type { PgoutputMessage } from './pgoutput-client.js';
import { replicationBroken } from './replication-setup.js';

export interface Change {
  table: MirrorTable;
  row: Record<string, unknown>;
}

interface Relation {
  table: MirrorTable;
  location: string;
}

/** Committed changes taken for one ClickHouse write, and the commit they end on. */
export interface Batch {
  changes: Change[];
  /** Commit end LSN of the last transaction in the batch. */
  lsn: bigint;
  /** Its commit time, µs since the Unix epoch. */
  commitUs: number;
  /** When the oldest of these transactions was received (for lag), to give back on failure. */
  oldestCommitMs: number | undefined;
}

export class ChangeBatcher {
  private readonly relations = new Map<number, Relation>();
  // the open transaction, and committed transactions not yet in ClickHouse
  private current: Change[] = [];
  private inTransaction = false;
  private pending: Change[] = [];
  private pendingLsn: bigint | undefined;
  private pendingCommitUs = 0;
  private oldestPendingCommitMs: number | undefined;

  constructor(
    private readonly options: {
      /** Named in the error for a table the replicator does not mirror. */
      publication: string;
      locations: Array<{ tag: string; schema: string }>;
      /** add() reports the batch full at the commit that reaches this many rows. */
      batchRows: number;
    },
  ) {}

  private get locationOfSchema(): Map<string, string> {
    return new Map(this.options.locations.map((l) => [l.schema, l.tag]));
  }

  /** When the oldest committed change not yet in ClickHouse was received. */
  get oldestPendingMs(): number | undefined {
    return this.oldestPendingCommitMs;
  }

  /** A commit is waiting to be written and acknowledged (even an empty transaction's). */
  get hasPending(): boolean {
    return this.pendingLsn !== undefined;
  }

  /** No open transaction and nothing committed waiting. */
  get isEmpty(): boolean {
    return !this.inTransaction && this.pending.length === 0 && this.pendingLsn === undefined;
  }

  /** Forget everything buffered (the stream is reopening from the slot). */
  reset(): void {
    this.current = [];
    this.pending = [];
    this.pendingLsn = undefined;
    this.oldestPendingCommitMs = undefined;
    this.inTransaction = false;
    this.relations.clear();
  }

  /**
   * Take one message. Returns true at a commit that brings the pending rows to batchRows: the
   * caller flushes now. Throws `replication_broken` for what the mirror cannot follow.
   */
  add(lsn: string, msg: PgoutputMessage): boolean {
    switch (msg.tag) {
      case 'relation': {
        const tag = this.locationOfSchema.get(msg.schema);
        const table = MIRROR_TABLES.find((t) => t.pgNames.includes(msg.name));
        if (tag === undefined || table === undefined)
          throw replicationBroken(
            `publication "${this.options.publication}" sent table ${msg.schema}.${msg.name}, which this replicator does not mirror (its locations: ${this.options.locations.map((l) => l.schema).join(', ')}). A location was added: restart \`weft replicate\` with WEFT_LOCATIONS listing it (nothing was acknowledged past it, so nothing is lost).`,
          );
        const names = new Set(msg.columns.map((c) => c.name));
        const missing = table.columns.filter((c) => !names.has(c.pg)).map((c) => c.pg);
        if (missing.length > 0)
          throw replicationBroken(
            `table ${msg.schema}.${msg.name} has no column ${missing.join(', ')} that the mirror needs: this replicator is newer than the database's migrations. Run \`weft migrate\`, or run the \`weft replicate\` of the deployed version.`,
          );
        this.relations.set(msg.relationOid, { table, location: tag });
        return false;
      }
      case 'begin':
        this.inTransaction = true;
        this.current = [];
        return false;
      case 'insert':
      case 'update':
      case 'delete': {
        const rel = this.relations.get(msg.relation.relationOid);
        if (!rel)
          throw replicationBroken(
            `a change to table oid ${msg.relation.relationOid} came before its relation message`,
          );
        const version = lsnToBigInt(lsn);
        if (msg.tag === 'delete') {
          if (!msg.old)
            throw replicationBroken(
              `a delete on ${msg.relation.schema}.${msg.relation.name} carries only its key: the table lacks REPLICA IDENTITY FULL (weft replicate and weft migrate set it; someone reset it). Run \`weft migrate\`, then \`weft replicate --rebuild\`.`,
            );
          this.current.push({
            table: rel.table,
            row: toMirrorRow(rel.table, rel.location, msg.old, version, true),
          });
        } else {
          const row = { ...msg.new };
          // an unchanged TOASTed value comes as undefined: the old row (REPLICA IDENTITY FULL) has it
          if (msg.tag === 'update' && msg.old)
            for (const k of Object.keys(row)) if (row[k] === undefined) row[k] = msg.old[k];
          this.current.push({
            table: rel.table,
            row: toMirrorRow(rel.table, rel.location, row, version, false),
          });
        }
        return false;
      }
      case 'truncate':
        throw replicationBroken(
          `TRUNCATE of ${msg.relations.map((r) => `${r.schema}.${r.name}`).join(', ')}: the mirror cannot follow a truncate. Rebuild it: \`weft replicate --rebuild\`.`,
        );
      case 'commit': {
        this.inTransaction = false;
        if (this.current.length > 0) {
          for (const c of this.current) this.pending.push(c);
          this.current = [];
          this.oldestPendingCommitMs ??= Date.now();
        }
        // Even an empty transaction moves the position to acknowledge.
        this.pendingLsn = lsnToBigInt(msg.commitEndLsn!);
        // pgoutput: µs since 2000-01-01; kept as µs since the Unix epoch
        this.pendingCommitUs = Number(msg.commitTime) + 946_684_800_000_000;
        return this.pending.length >= this.options.batchRows;
      }
      default:
        return false;
    }
  }

  /**
   * Take the committed changes for a write (undefined when no commit waits). The commit stays
   * pending until settled(): a commit that arrives meanwhile is not lost.
   */
  take(): Batch | undefined {
    const lsn = this.pendingLsn;
    if (lsn === undefined) return undefined;
    const batch: Batch = {
      changes: this.pending,
      lsn,
      commitUs: this.pendingCommitUs,
      oldestCommitMs: this.oldestPendingCommitMs,
    };
    this.pending = [];
    this.oldestPendingCommitMs = undefined;
    return batch;
  }

  /** The write of this batch failed: its age counts for the lag again. */
  giveBack(batch: Batch): void {
    this.oldestPendingCommitMs = batch.oldestCommitMs;
  }

  /** ClickHouse holds the batch and its commit was acknowledged. */
  settled(batch: Batch): void {
    if (this.pendingLsn === batch.lsn) this.pendingLsn = undefined;
  }
}

/** Insert a batch's rows into ClickHouse, one insert per mirrored table. */
export async function insertChanges(clickhouse: Clickhouse, changes: Change[]): Promise<void> {
  const byTable = new Map<string, Record<string, unknown>[]>();
  for (const c of changes) {
    const rows = byTable.get(c.table.name) ?? [];
    rows.push(c.row);
    byTable.set(c.table.name, rows);
  }
  for (const [table, rows] of byTable) await clickhouse.insert(table, rows);
}
