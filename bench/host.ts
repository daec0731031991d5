/**
 * One benchmark process per system under test (started by bench/run.ts over IPC): opens the
 * system, then runs the timed repetitions it is asked for and reports each with its costs. A
 * process of its own keeps each system's JIT, GC, pools and global state (DBOS is a singleton)
 * from leaking into another's figures, and makes `process.cpuUsage()` that system's alone.
 */
import { loadavg } from 'node:os';
import {
  dropLeftoverDatabases,
  installWireCounter,
  serverCpuMs,
  ServerProbe,
  type ServerSnapshot,
} from './lib/postgres.js';
import type { FromHost, HostArgs, Sample, ToHost } from './lib/protocol.js';
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
  send({ type: 'ready', database: session.database ?? null, settings: session.settings });

  let queue = Promise.resolve();
  process.on('message', (message: ToHost) => {
    queue = queue.then(async () => {
      try {
        if (message.type === 'close') {
          await probe?.close();
          const diagnostics = (await session.close()) ?? undefined;
          await dropLeftoverDatabases();
          const closed: FromHost = diagnostics
            ? { type: 'closed', diagnostics }
            : { type: 'closed' };
          // Exit even if a library left a timer or socket behind; --cpu-prof still writes its profile.
          process.send!(closed, () => process.exit(0));
          return;
        }
        send({ type: 'sample', sample: await measure(session, probe, message) });
      } catch (error) {
        send({
          type: 'error',
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        });
      }
    });
  });
}

async function measure(
  session: Session,
  probe: ServerProbe | undefined,
  m: Extract<ToHost, { type: 'measure' }>,
): Promise<Sample> {
  await session.configure(m.bench, m.variant);
  gc?.();
  const before: ServerSnapshot | undefined = await probe?.snapshot();
  const exec0 = session.executorCounts?.();
  wire.reset();
  const cpu0 = process.cpuUsage();
  const timed =
    m.bench === 'chain'
      ? await session.chain(m.stepsPerRun)
      : await session.fanout(m.runs, m.stepsPerRun);
  const cpu = process.cpuUsage(cpu0);
  const w = wire.read();
  const exec1 = session.executorCounts?.();
  const after = await probe?.snapshot();
  await timed.verify?.();
  const sample: Sample = {
    wallMs: timed.wallMs,
    steps: timed.steps,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    load1: loadavg()[0]!,
  };
  if (timed.triggeredMs !== undefined) sample.triggeredMs = timed.triggeredMs;
  if (before && after) {
    const ms = serverCpuMs(before, after);
    if (ms !== undefined) sample.serverCpuMs = ms;
    sample.writeTransactions = Number(after.nextXid - before.nextXid);
    sample.wireRoundTrips = w.roundTrips;
    sample.wireTransactions = w.transactions;
  }
  if (exec0 && exec1) {
    sample.executorRoundTrips = exec1.roundTrips - exec0.roundTrips;
    sample.executorTransactions = exec1.transactions - exec0.transactions;
  }
  return sample;
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
