/** Reading a local server process's costs from /proc (Linux). */
import { readFile } from 'node:fs/promises';

/** CPU (ms) and bytes written to storage so far by a local process (from /proc). */
export async function readProcessStats(
  pid: number,
): Promise<{ cpuMs: number; writeBytes?: number } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime is the 14th, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const out: { cpuMs: number; writeBytes?: number } = { cpuMs: (ticks * 1000) / 100 };
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
