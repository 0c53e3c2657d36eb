import { readFile } from 'node:fs/promises';

/**
 * CPU and memory of a replica process from /proc (Linux): `stat` for the CPU ticks it used,
 * `statm` for its resident pages. CPU% comes from two readings (ticks used / ticks elapsed),
 * so the first reading of a process has no CPU% yet. Other systems: no REPLICA metrics.
 */

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux the gateway targets
const PAGE_BYTES = 4096;

export interface ProcessReading {
  /** utime + stime, in ticks. */
  ticks: number;
  rssBytes: number;
  /** When read (ms, monotonic). */
  at: number;
}

export async function readProcess(pid: number): Promise<ProcessReading | null> {
  try {
    const [stat, statm] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/statm`, 'utf8')]);
    // Fields after the parenthesised command name (which may hold spaces): utime is field 14.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const rssPages = Number(statm.split(' ')[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(rssPages)) return null;
    return { ticks, rssBytes: rssPages * PAGE_BYTES, at: performance.now() };
  } catch {
    return null;
  }
}

/** CPU% of one core between two readings of the same process (100 = one core busy). */
export function cpuPercent(previous: ProcessReading, current: ProcessReading): number | null {
  const elapsedS = (current.at - previous.at) / 1000;
  if (elapsedS <= 0) return null;
  return Math.max(0, ((current.ticks - previous.ticks) / CLOCK_TICKS / elapsedS) * 100);
}
