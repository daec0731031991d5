/**
 * The logical replication client (`pg-logical-replication`), loaded on first use because it is an
 * optional dependency, and the shape of the `pgoutput` messages the replicator reads. Described
 * structurally, so the library's own types do not leak past this file.
 */
import { WeftError } from '../core/errors.js';

export interface PgoutputRelation {
  tag: 'relation';
  relationOid: number;
  schema: string;
  name: string;
  columns: Array<{ name: string }>;
}
type Tuple = Record<string, string | null | undefined>;
export type PgoutputMessage =
  | PgoutputRelation
  | { tag: 'begin' }
  | { tag: 'commit'; commitEndLsn: string | null; commitTime: bigint }
  | { tag: 'insert'; relation: PgoutputRelation; new: Tuple }
  | { tag: 'update'; relation: PgoutputRelation; old: Tuple | null; new: Tuple }
  | { tag: 'delete'; relation: PgoutputRelation; old: Tuple | null }
  | { tag: 'truncate'; relations: PgoutputRelation[] }
  | { tag: 'type' | 'origin' | 'message' };

interface ReplicationService {
  on(event: 'error', fn: (e: Error) => void): void;
  on(event: 'data', fn: (lsn: string, msg: PgoutputMessage) => Promise<void>): void;
  on(event: 'heartbeat', fn: (lsn: string, ts: number, shouldRespond: boolean) => void): void;
  subscribe(plugin: unknown, slot: string): Promise<unknown>;
  stop(): Promise<unknown>;
  acknowledge(lsn: string): Promise<boolean>;
}

interface ReplicationModule {
  LogicalReplicationService: new (
    client: Record<string, unknown>,
    config: Record<string, unknown>,
  ) => ReplicationService;
  PgoutputPlugin: new (options: { protoVersion: 1; publicationNames: string[] }) => {
    parse(buffer: Buffer): unknown;
  };
}

export async function loadReplicationClient(): Promise<ReplicationModule> {
  try {
    return (await import('pg-logical-replication')) as unknown as ReplicationModule;
  } catch (error) {
    throw new WeftError(
      'invalid_config',
      '`weft replicate` needs the package "pg-logical-replication" (and "pg"): run `npm install pg-logical-replication pg`.',
      { cause: error },
    );
  }
}
