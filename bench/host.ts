/**
 * One benchmark process per system under test (started by bench/run.ts over IPC): opens the
 * system, then runs the timed repetitions it is asked for and reports each with its costs. A
 * process of its own keeps each system's JIT, GC, pools and global state (DBOS is a singleton)
 * from leaking into another's figures, and makes `process.cpuUsage()` that system's alone.
 */
import { loadavg } from 'node:os';
import {
  DiagnoseProbe,
  lsnBytes,
  STATS_SETTLE_MS,
  tableDelta,
  type DiagnoseMark,
  type RepDiagnosis,
} from './lib/diagnose.js';
import {
  databaseUrl,
  dropLeftoverDatabases,
  installWireCounter,
  serverCpuMs,
  ServerProbe,
  type ServerSnapshot,
} from './lib/postgres.js';
import type { FromHost, HostArgs, Sample, ToHost } from './lib/protocol.js';
import { readMachineBusyMs } from './lib/proc.js';
import { TARGETS } from './systems/index.js';
import type { Session } from './systems/system.js';

const send = (message: FromHost): void => {
  process.send!(message);
};

const args = JSON.parse(process.argv[2] ?? '{}') as HostArgs;
const wire = installWireCounter();
const gc = (globalThis as { gc?: () => void }).gc;

async function main(): Promise<void> {
  const target = TARGETS.find((t) => t.id === args.target);
  if (!target) throw new Error(`unknown target ${args.target}`);
  const session = await target.open(args.sizes, { diagnose: args.diagnose });
  const probe = session.database ? await ServerProbe.open(session.database) : undefined;
  const diagnoseProbe =
    session.database && args.diagnose !== 'off'
      ? await DiagnoseProbe.open(databaseUrl(session.database))
      : undefined;
  send({ type: 'ready', database: session.database ?? null, settings: session.settings });
  // The runner sends SIGTERM to a process whose measurement hangs: stop the system (its database
  // dropped, a server it started stopped) within 20 s, then exit.
  process.once('SIGTERM', () => {
    const exit = () => process.exit(1);
    setTimeout(exit, 20_000).unref();
    void session
      .close()
      .catch(() => {})
      .then(() => dropLeftoverDatabases())
      .finally(exit);
  });

  let queue = Promise.resolve();
  process.on('message', (message: ToHost) => {
    queue = queue.then(async () => {
      try {
        if (message.type === 'close') {
          await probe?.close();
          await diagnoseProbe?.close();
          const diagnostics = (await session.close()) ?? undefined;
          await dropLeftoverDatabases();
          const closed: FromHost = diagnostics
            ? { type: 'closed', diagnostics }
            : { type: 'closed' };
          // Exit even if a library left a timer or socket behind; --cpu-prof still writes its profile.
          process.send!(closed, () => process.exit(0));
          return;
        }
        send({
          type: 'sample',
          sample: await measure(session, probe, diagnoseProbe, message),
        });
      } catch (error) {
        send({
          type: 'error',
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        });
      }
    });
  });
}

/** Diagnose: the last after-mark and the variant it followed (reused when nothing changed since). */
let lastMark: { key: string; mark: DiagnoseMark } | undefined;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function measure(
  session: Session,
  probe: ServerProbe | undefined,
  diagnose: DiagnoseProbe | undefined,
  m: Extract<ToHost, { type: 'measure' }>,
): Promise<Sample> {
  await session.configure(m.bench, m.variant);
  const key = `${m.bench}/${m.variant.name}`;
  let mark: DiagnoseMark | undefined;
  if (diagnose) {
    // Statistics written before this repetition must be flushed before its first mark; after a
    // repetition of the same variant they were (its after-mark waited), otherwise wait now.
    if (lastMark?.key === key)
      mark = { tables: lastMark.mark.tables, lsn: await diagnose.holdWal() };
    else {
      await sleep(STATS_SETTLE_MS);
      mark = await diagnose.mark();
    }
  }
  if (args.gcBetweenReps) gc?.();
  const before: ServerSnapshot | undefined = await probe?.snapshot();
  const proc0 = await session.serverProcess?.();
  const exec0 = session.executorCounts?.();
  wire.reset();
  const load0 = loadavg()[0]!;
  const machine0 = await readMachineBusyMs();
  const cpu0 = process.cpuUsage();
  const timed =
    m.bench === 'chain'
      ? await session.chain(m.stepsPerRun)
      : m.bench === 'fanout'
        ? await session.fanout(m.runs, m.stepsPerRun)
        : await session.latency!(m.runs);
  const cpu = process.cpuUsage(cpu0);
  const machine1 = await readMachineBusyMs();
  const w = wire.read();
  const exec1 = session.executorCounts?.();
  const proc1 = await session.serverProcess?.();
  const after = await probe?.snapshot();
  const lsnAfter = await diagnose?.lsn();
  await timed.verify?.();
  const sample: Sample = {
    wallMs: timed.wallMs,
    steps: timed.steps,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    load1: loadavg()[0]!,
    load1AtStart: load0,
  };
  if (timed.triggeredMs !== undefined) sample.triggeredMs = timed.triggeredMs;
  if (timed.latenciesMs) sample.latency = percentiles(timed.latenciesMs);
  if (before && after) {
    const ms = serverCpuMs(before, after);
    if (ms !== undefined) sample.serverCpuMs = ms;
    sample.writeTransactions = Number(after.nextXid - before.nextXid);
    sample.wireRoundTrips = w.roundTrips;
    sample.wireTransactions = w.transactions;
  }
  if (proc0 && proc1) {
    sample.serverCpuMs = proc1.cpuMs - proc0.cpuMs;
    if (proc0.writeBytes !== undefined && proc1.writeBytes !== undefined)
      sample.serverWriteBytes = proc1.writeBytes - proc0.writeBytes;
  }
  if (machine0 !== undefined && machine1 !== undefined) {
    // What else ran: the machine's busy time less this process's and the system's server's
    // (PostgreSQL's own background processes, the other systems' idle processes, other tenants).
    sample.otherCpuMs = Math.max(
      0,
      machine1 - machine0 - sample.clientCpuMs - (sample.serverCpuMs ?? 0),
    );
  }
  if (exec0 && exec1) {
    sample.executorRoundTrips = exec1.roundTrips - exec0.roundTrips;
    sample.executorTransactions = exec1.transactions - exec0.transactions;
  }
  if (diagnose && mark && lsnAfter) {
    // This database's WAL share first: on a busy server a checkpoint may recycle the segments
    // during the statistics wait below.
    const own = await diagnose
      .ownWalBytes(mark.lsn, lsnAfter)
      .catch((error: unknown) => {
        process.stderr.write(`diagnose: this database's WAL share not read: ${String(error)}\n`);
        return undefined;
      })
      .finally(() => diagnose.releaseWal());
    await sleep(STATS_SETTLE_MS);
    const afterMark: DiagnoseMark = { tables: await diagnose.tables(), lsn: lsnAfter };
    const d: RepDiagnosis = {
      tables: tableDelta(mark.tables, afterMark.tables),
      walBytes: lsnBytes(mark.lsn, lsnAfter),
    };
    if (own !== undefined) {
      d.ownWalBytes = own.bytes;
      d.ownWalFpiBytes = own.fpiBytes;
    }
    if (m.bench === 'chain') d.bareCommitMs = await diagnose.bareCommitMs();
    sample.diagnose = d;
    lastMark = { key, mark: afterMark };
  }
  return sample;
}

function percentiles(xs: number[]): NonNullable<Sample['latency']> {
  const sorted = [...xs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { n: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.at(-1)! };
}

main().catch(async (error: unknown) => {
  await dropLeftoverDatabases();
  send({
    type: 'error',
    message: error instanceof Error ? (error.stack ?? error.message) : String(error),
  });
  process.exitCode = 1;
  process.disconnect();
});
