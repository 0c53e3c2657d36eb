import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * CONTROLLER_RUN_AS: the user replicas (and their pre-start commands) run as. A model process
 * of another uid cannot read the gateway's `/proc/<pid>/environ` (the kernel allows that only to
 * the same uid or root), nor DATA_DIR (0700), nor files the operator keeps private. The
 * operator creates the user; the gateway must run as root to switch to it.
 */

export interface RunAs {
  uid: number;
  gid: number;
  /** The user name (for USER/LOGNAME), or the uid when it has none. */
  name: string;
}

export class RunAsError extends Error {
  constructor(message: string) {
    super(`CONTROLLER_RUN_AS: ${message}`);
    this.name = 'RunAsError';
  }
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

function passwdEntries(): PasswdEntry[] {
  let text = '';
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]) && /^\d+$/.test(f[3]))
    .map((f) => ({ name: f[0], uid: Number(f[2]), gid: Number(f[3]) }));
}

/** Users not in /etc/passwd (LDAP, sssd): ask the system through `id`. */
function lookupWithId(name: string): PasswdEntry | null {
  try {
    const uid = Number(execFileSync('id', ['-u', '--', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', '--', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { name, uid, gid } : null;
  } catch {
    return null;
  }
}

/** `name`, `uid` or `uid:gid` → ids; throws RunAsError with one clear line. */
export function resolveRunAs(value: string, currentUid: number | undefined = process.getuid?.()): RunAs {
  let entry: PasswdEntry;
  const numeric = /^(\d+)(?::(\d+))?$/.exec(value);
  if (numeric) {
    const uid = Number(numeric[1]);
    const known = passwdEntries().find((e) => e.uid === uid);
    entry = { name: known?.name ?? String(uid), uid, gid: numeric[2] !== undefined ? Number(numeric[2]) : (known?.gid ?? uid) };
  } else {
    const found = passwdEntries().find((e) => e.name === value) ?? lookupWithId(value);
    if (!found) throw new RunAsError(`no user named ${value} on this machine (create it first, e.g. useradd --system ${value})`);
    entry = found;
  }
  if (entry.uid === 0 || entry.gid === 0) throw new RunAsError('must not be root (uid or gid 0): replicas would hold every privilege of the gateway');
  if (currentUid === undefined) throw new RunAsError('is supported on Linux and other POSIX systems only');
  if (currentUid !== 0 && currentUid !== entry.uid) {
    throw new RunAsError(`switching replicas to uid ${entry.uid} needs the gateway to run as root (it runs as uid ${currentUid})`);
  }
  return { uid: entry.uid, gid: entry.gid, name: entry.name };
}
