import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';

/**
 * Where replicas' working directories live. Not under DATA_DIR: a replica's `../../..` must not
 * lead to the store's files, and with CONTROLLER_RUN_AS the replica user could not even enter a
 * DATA_DIR that is (rightly) 0700. Default: `<tmpdir>/modelgate-replicas-<gateway uid>/<id>`,
 * where `<id>` is derived from DATA_DIR (so a restarted gateway finds and cleans up what its
 * previous run left) or from the pid when ephemeral (so gateways on one machine never share).
 *
 * Directories the gateway creates here are 0711: a replica user can pass through to its own
 * directory but cannot list its neighbours'.
 */

export const TRAVERSE_ONLY = 0o711;

export class WorkDirError extends Error {
  constructor(message: string) {
    super(`CONTROLLER_WORK_DIR: ${message}`);
    this.name = 'WorkDirError';
  }
}

export interface WorkDirSettings {
  CONTROLLER_WORK_DIR?: string;
  DATA_DIR: string;
  ephemeral: boolean;
}

function isInside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep));
}

/** mkdir that refuses a planted symlink or someone else's directory (the base sits in a world-writable /tmp). */
function ownDirectory(path: string, uid: number | undefined): void {
  try {
    mkdirSync(path, { mode: TRAVERSE_ONLY });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new WorkDirError(`cannot create ${path}: ${(err as Error).message}`);
  }
  const info = lstatSync(path);
  if (!info.isDirectory() || info.isSymbolicLink()) throw new WorkDirError(`${path} exists and is not a directory`);
  if (uid !== undefined && info.uid !== uid) throw new WorkDirError(`${path} belongs to uid ${info.uid}, not to the gateway's uid ${uid}; remove it or set CONTROLLER_WORK_DIR`);
  chmodSync(path, TRAVERSE_ONLY);
}

/** Without a DATA_DIR to key it by, the default directory belongs to this process alone. */
function perRun(s: WorkDirSettings): boolean {
  return s.ephemeral || !s.DATA_DIR;
}

/**
 * On a clean stop: a per-run default directory is nobody's to reuse and goes with everything in
 * it; a DATA_DIR-keyed one goes only when empty (rmdir refuses otherwise), so what a restarted
 * gateway must find and clean up stays, and gateways that never ran a replica leave nothing in
 * /tmp. CONTROLLER_WORK_DIR is the operator's and is left alone.
 */
export async function releaseWorkDir(dir: string, s: WorkDirSettings): Promise<void> {
  if (s.CONTROLLER_WORK_DIR) return;
  await (perRun(s) ? rm(dir, { recursive: true, force: true }) : rmdir(dir)).catch(() => undefined);
}

/** Resolves (and creates) the replicas' base directory. */
export function prepareWorkDir(s: WorkDirSettings): string {
  const uid = process.getuid?.();
  if (s.CONTROLLER_WORK_DIR) {
    const dir = resolve(s.CONTROLLER_WORK_DIR);
    if (!s.ephemeral && s.DATA_DIR && isInside(resolve(s.DATA_DIR), dir)) {
      throw new WorkDirError(`${dir} is inside DATA_DIR: replicas could reach the store's files; choose a folder outside it`);
    }
    mkdirSync(dir, { recursive: true, mode: TRAVERSE_ONLY });
    return dir;
  }
  const base = join(tmpdir(), `modelgate-replicas-${uid ?? 'user'}`);
  ownDirectory(base, uid);
  const id = perRun(s) ? `run-${process.pid}` : createHash('sha256').update(resolve(s.DATA_DIR)).digest('hex').slice(0, 16);
  const dir = join(base, id);
  ownDirectory(dir, uid);
  return dir;
}
