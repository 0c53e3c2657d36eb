import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';

/**
 * Takes the gateway's secrets out of its environment before anything else runs, so a model
 * process cannot read them from `/proc/<gateway pid>/environ`.
 *
 * Deleting from process.env is not enough: `/proc/<pid>/environ` shows the process's original
 * environment block (the strings the kernel copied onto its stack at exec), which any process
 * of the same user may read. So the values are also overwritten in place in that block, through
 * `/proc/self/mem` (a process may always write its own memory); afterwards `/proc/<pid>/environ`
 * reads `ADMIN_TOKEN=****…`. This does the job of a launcher that re-executes the gateway with
 * the secrets handed over on a pipe, without leaving a launcher process whose own start-up
 * environment still holds them as the replicas' grandparent (Node 20 has no execve).
 *
 * The values are returned, for loadSettings, and never written back to process.env: children
 * (replicas, cluster workers) inherit a clean environment.
 */

/** Settings that are credentials: ADMIN_TOKEN, TOKEN_SECRET, and REDIS_URL (it may carry a password). */
export const SECRET_ENV_NAMES = ['ADMIN_TOKEN', 'TOKEN_SECRET', 'REDIS_URL'] as const;

export interface TakenSecrets {
  /** The values found (only the names that were set). */
  values: Partial<Record<(typeof SECRET_ENV_NAMES)[number], string>>;
  /** False when the start-up environment block could not be overwritten (reason in `problem`). */
  scrubbed: boolean;
  problem?: string;
}

/** Fields 50 and 51 of /proc/self/stat: where the start-up environment block lives. */
function environBounds(): { start: number; end: number } | null {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Count fields after the parenthesised command name (which may hold spaces): field 3 is index 0.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  const start = Number(fields[50 - 3]);
  const end = Number(fields[51 - 3]);
  return Number.isSafeInteger(start) && Number.isSafeInteger(end) && start > 0 && end > start ? { start, end } : null;
}

/** Overwrites `NAME=value` entries' values in the start-up environment block with '*'. */
function scrubStartupEnvironment(names: readonly string[]): void {
  const bounds = environBounds();
  if (!bounds) throw new Error('the start-up environment block is not visible in /proc/self/stat');
  const block = readFileSync('/proc/self/environ');
  const fd = openSync('/proc/self/mem', 'r+');
  try {
    let pos = 0;
    while (pos < block.length) {
      let end = block.indexOf(0, pos);
      if (end < 0) end = block.length;
      const eq = block.indexOf(0x3d, pos);
      if (eq > pos && eq < end && names.includes(block.toString('latin1', pos, eq)) && end > eq + 1) {
        const mask = Buffer.alloc(end - eq - 1, 0x2a);
        writeSync(fd, mask, 0, mask.length, bounds.start + eq + 1);
      }
      pos = end + 1;
    }
  } finally {
    closeSync(fd);
  }
}

/** True when none of `values` can be read back from `/proc/self/environ`. */
function startupEnvironmentClean(values: readonly string[]): boolean {
  const block = readFileSync('/proc/self/environ', 'latin1');
  return values.every((v) => !block.includes(v));
}

export function takeSecretEnv(env: NodeJS.ProcessEnv = process.env): TakenSecrets {
  const values: TakenSecrets['values'] = {};
  const present: string[] = [];
  for (const name of SECRET_ENV_NAMES) {
    const value = env[name];
    if (value === undefined) continue;
    values[name] = value;
    present.push(name);
    delete env[name];
  }
  const nonEmpty = Object.values(values).filter((v): v is string => typeof v === 'string' && v.length > 0);
  if (nonEmpty.length === 0 || env !== process.env) return { values, scrubbed: true };
  if (process.platform !== 'linux') return { values, scrubbed: false, problem: `no /proc/self/mem on ${process.platform}` };
  try {
    scrubStartupEnvironment(present);
    if (!startupEnvironmentClean(nonEmpty)) return { values, scrubbed: false, problem: 'values still readable after overwriting' };
    return { values, scrubbed: true };
  } catch (err) {
    return { values, scrubbed: false, problem: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
}
