#!/usr/bin/env node
// Builds dist/ from src/ (and the console, console/ → dist/console/) only when a source is newer
// than the last build, so `npm start` is a plain `node dist/main.js` after the first time. Run by
// `prepare` (npm ci) and `start`.
//
// The stamp takes the time the last build *started*: a file saved while tsc ran is newer and is
// built on the next start. dist/ is compiled over in place (a gateway starting at the same time
// still finds every module), then outputs whose source is gone are removed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const SOURCES = ['src', 'console', 'tsconfig.json', 'tsconfig.build.json'];
/** The console's bundle (console/build.mjs), not compiled from src/. */
const CONSOLE_OUT = join('dist', 'console');
const STAMP = join('dist', '.build-stamp');

function newestMtime(path) {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs; // a deleted file shows only as its folder's mtime
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/** Removes dist/x.js(.map) whose src/x.ts no longer exists (moved or deleted modules). */
function pruneOrphans(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (path === CONSOLE_OUT) continue;
    if (entry.isDirectory()) {
      pruneOrphans(path);
      if (readdirSync(path).length === 0) rmSync(path, { recursive: true });
      continue;
    }
    const match = /^(.*)\.js(?:\.map)?$/.exec(relative('dist', path));
    if (match && !existsSync(join('src', `${match[1]}.ts`))) rmSync(path);
  }
}

// A checkout without sources (the Docker runtime stage installs dependencies only): nothing to build.
if (!existsSync('src')) process.exit(0);

const built = statSync(STAMP, { throwIfNoEntry: false })?.mtimeMs ?? -1;
if (Math.max(...SOURCES.map(newestMtime)) <= built && existsSync(join('dist', 'main.js'))) process.exit(0);

const TSC = join('node_modules', 'typescript', 'bin', 'tsc');
if (!existsSync(TSC)) {
  process.stderr.write('modelgate: src/ is newer than dist/ but TypeScript is not installed (run npm ci, with dev dependencies)\n');
  process.exit(1);
}
const started = new Date();
process.stderr.write('modelgate: compiling src/ and console/ to dist/ (sources changed since the last build)\n');
const tsc = spawnSync(process.execPath, [TSC, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
pruneOrphans('dist');
if (existsSync(join('console', 'build.mjs'))) {
  const bundle = spawnSync(process.execPath, [join('console', 'build.mjs')], { stdio: 'inherit' });
  if (bundle.status !== 0) process.exit(bundle.status ?? 1);
}
writeFileSync(STAMP, '');
utimesSync(STAMP, started, started);
