import { copyFile, lstat, mkdir, readdir, readlink, stat, symlink, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';

/**
 * A replica's view of the model folder: a directory of symlinks to the real folder's entries.
 * Reads go straight to the user's files (no copy of gigabytes of weights), while pre-start
 * actions that write under model_path get a private copy of just the path they touch
 * ("copy-up"), so replicas never overwrite each other's files or the user's folder.
 */

export async function createOverlay(realFolder: string, overlayDir: string): Promise<void> {
  await mkdir(overlayDir, { recursive: true });
  await linkChildren(realFolder, overlayDir);
}

async function linkChildren(realDir: string, overlayDir: string): Promise<void> {
  for (const entry of await readdir(realDir)) {
    await symlink(join(realDir, entry), join(overlayDir, entry));
  }
}

function isInside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep);
}

/**
 * Makes `target` writable without touching the real folder: every symlinked directory on the
 * way becomes a real directory of symlinks, and a symlinked file is replaced by a private copy
 * (kept when `keepContent`, for appends). No-op for paths outside the overlay.
 */
export async function copyUp(overlayDir: string, target: string, keepContent: boolean): Promise<void> {
  const root = resolve(overlayDir);
  const full = resolve(target);
  if (!isInside(root, full)) return;
  const parts = relative(root, dirname(full)).split(sep).filter(Boolean);
  let current = root;
  for (const part of parts) {
    current = join(current, part);
    if (!(await materializeDir(current))) return;
  }
  let info;
  try {
    info = await lstat(full);
  } catch {
    return;
  }
  if (!info.isSymbolicLink()) return;
  if (await materializeDir(full)) return;
  const real = resolve(dirname(full), await readlink(full));
  await unlink(full);
  if (keepContent) await copyFile(real, full).catch(() => undefined);
}

/**
 * Turns a symlink to a directory into a private directory of symlinks. True when `path` is now
 * a real directory; false when it does not exist or is not a directory.
 */
async function materializeDir(path: string): Promise<boolean> {
  let info;
  try {
    info = await lstat(path);
  } catch {
    return false;
  }
  if (info.isDirectory()) return true;
  if (!info.isSymbolicLink()) return false;
  const real = resolve(dirname(path), await readlink(path));
  try {
    if (!(await stat(real)).isDirectory()) return false;
  } catch {
    return false;
  }
  await unlink(path);
  await mkdir(path);
  await linkChildren(real, path);
  return true;
}
