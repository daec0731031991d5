/**
 * Several control-plane writes in one transaction: the stores of the control database (control,
 * schedules, webhooks, audit) bound to one transaction, so that an action and its audit entry
 * commit or roll back together (src/server/routes/audit.ts, `audited`).
 *
 * A bound store is the store itself with its `db` replaced by the transaction (a prototype view:
 * caches and settings are shared, nothing is copied). A verb that opens a transaction of its own
 * (deleteTenant, registerWorkflow) joins this one. Everything a bound verb reads goes through the
 * transaction too: on PGlite, with one connection, a read through the store's own executor
 * would wait for the transaction that is waiting for it. So do the reads that need other
 * databases (run data, validation against runs) before, not inside.
 *
 * Cache drops a verb makes happen before the commit; the commit's `weft_control_changed`
 * notification drops them again (other processes and this one), and `inControlTransaction` drops
 * this process's caches once more after the commit, so no pre-commit read stays cached here.
 */
import type { AuditStore } from './audit-store.js';
import type { ControlStore } from './control-store.js';
import type { Executor, Queryable } from './executor.js';
import type { ScheduleStore } from './schedule-store.js';
import type { WebhookStore } from './webhook-store.js';

export interface ControlStores {
  control: ControlStore;
  schedules: ScheduleStore;
  webhooks: WebhookStore;
  audit: AuditStore;
}

export interface BoundControlStores extends ControlStores {
  /** The transaction itself, for statements of the caller's own. */
  tx: Queryable;
}

/** An executor whose statements go to `tx`; a nested transaction joins it. */
function transactionExecutor(base: Executor, tx: Queryable): Executor {
  return {
    kind: base.kind,
    query: (sql, params) => tx.query(sql, params),
    exec: (sql) => tx.exec(sql),
    transaction: (fn) => fn(tx),
    listen: (channel, onNotify, options) => base.listen(channel, onNotify, options),
    close: () => Promise.resolve(),
  };
}

function bind<T extends object>(store: T, db: Executor): T {
  const view = Object.create(store) as T;
  Object.defineProperty(view, 'db', { value: db, enumerable: true });
  return view;
}

/**
 * Run `fn` with the control-database stores bound to one transaction: it commits when `fn`
 * resolves and rolls back when it throws. Every store in `stores` must use the same executor (they
 * do: createStores gives all four the control database).
 */
export async function inControlTransaction<T>(
  stores: ControlStores,
  fn: (bound: BoundControlStores) => Promise<T>,
): Promise<T> {
  const db = stores.control.db;
  try {
    return await db.transaction(async (tx) => {
      const exec = transactionExecutor(db, tx);
      return fn({
        tx,
        control: bind(stores.control, exec),
        schedules: bind(stores.schedules, exec),
        webhooks: bind(stores.webhooks, exec),
        audit: bind(stores.audit, exec),
      });
    });
  } finally {
    stores.control.dropCaches();
  }
}
