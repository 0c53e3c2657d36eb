import { constants, promises as fsp, readFileSync, openSync, writeSync, fsyncSync, closeSync, unlinkSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from '../obs/logger.js';

/**
 * File-system primitives for state that must survive kill -9: the data folder, atomic file
 * replacement, and the single-writer lock.
 */

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/** Creates the data folder (0700). A folder that exists already keeps its mode; a loose one is reported. */
export function ensureDataDir(dir: string, logger: Logger): void {
  let existed = true;
  try {
    statSync(dir);
  } catch {
    existed = false;
  }
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const mode = statSync(dir).mode & 0o777;
  if (existed && (mode & 0o077) !== 0) {
    logger.warn({ data_dir: dir, mode: mode.toString(8) }, 'data folder is readable by other users; chmod 700 it');
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` with `data` so that a crash leaves either the old or the new content:
 * write a temp file, fsync it, rename over, fsync the folder (the rename itself must be durable).
 */
export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const handle = await fsp.open(tmp, 'w', FILE_MODE);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(dirname(file));
}

/**
 * Creates `file` with `data` only if it does not exist (link(2) fails on an existing target),
 * so two processes racing can never overwrite each other. Returns false when it existed.
 */
export async function createFileExclusive(file: string, data: string): Promise<boolean> {
  const tmp = `${file}.tmp-${process.pid}`;
  const handle = await fsp.open(tmp, 'w', FILE_MODE);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fsp.link(tmp, file);
    await fsyncDir(dirname(file));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await fsp.unlink(tmp).catch(() => {});
  }
}

export class DataDirLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirLockedError';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Folders locked by this process: a second store in the same process must be refused too. */
const HELD = new Set<string>();

export interface DirLock {
  readonly file: string;
  release(): void;
}

/**
 * Takes `dir/lock` holding our pid. A lock whose pid is alive refuses; one whose pid is gone
 * (a crash) is taken over. Residual race, accepted: two processes taking over the same stale
 * lock in the same instant.
 */
export function acquireDirLock(dir: string, logger: Logger): DirLock {
  const file = join(dir, 'lock');
  const key = resolve(file);
  if (HELD.has(key)) throw new DataDirLockedError(`data folder ${dir} is already open in this process (lock ${file})`);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', FILE_MODE);
      try {
        writeSync(fd, `${process.pid}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      HELD.add(key);
      return {
        file,
        release() {
          HELD.delete(key);
          try {
            if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
          } catch {}
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = NaN;
    try {
      owner = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    } catch {}
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      throw new DataDirLockedError(
        `data folder ${dir} is in use by process ${owner} (lock file ${file}): only one modelgate may write it. ` +
          `Stop that process, or point DATA_DIR elsewhere. If process ${owner} is not a modelgate, delete ${file}.`,
      );
    }
    logger.warn({ lock_file: file, stale_pid: Number.isNaN(owner) ? null : owner }, 'taking over a stale data folder lock');
    try {
      unlinkSync(file);
    } catch {}
  }
  throw new DataDirLockedError(`data folder ${dir}: could not take the lock ${file}`);
}
