/** Reading a local server process's costs from /proc (Linux). */
import { readFile } from 'node:fs/promises';

/** /proc counts CPU time in clock ticks of 1/USER_HZ s; USER_HZ is 100 on Linux x86-64 and arm64. */
const TICKS_PER_SECOND = 100;
const ticksToMs = (ticks: number) => (ticks * 1000) / TICKS_PER_SECOND;

/** CPU (ms) and bytes written to storage so far by a local process (from /proc). */
export async function readProcessStats(
  pid: number,
): Promise<{ cpuMs: number; writeBytes?: number } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime is the 14th, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const out: { cpuMs: number; writeBytes?: number } = { cpuMs: ticksToMs(ticks) };
    try {
      const io = await readFile(`/proc/${pid}/io`, 'utf8');
      const m = /write_bytes:\s*(\d+)/.exec(io);
      if (m) out.writeBytes = Number(m[1]);
    } catch {
      // /proc/<pid>/io needs the same user (or ptrace rights): CPU alone then
    }
    return out;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (ms) spent by everything on this machine so far, summed over its CPUs: the busy
 * fields of /proc/stat's first line (user, nice, system, irq, softirq, steal; idle and iowait
 * are not busy). Read before and after a repetition, it tells how much CPU ran beside the system
 * under test: the machine's busy time less the system's own client and server CPU.
 */
export async function readMachineBusyMs(): Promise<number | undefined> {
  try {
    const stat = await readFile('/proc/stat', 'utf8');
    const fields = stat.slice(0, stat.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const [user, nice, system, , , irq, softirq, steal] = fields;
    const ticks = user! + nice! + system! + irq! + softirq! + (steal ?? 0);
    return ticksToMs(ticks);
  } catch {
    return undefined;
  }
}
