// Bundles the console (console/src) into dist/console: one script, one stylesheet, one page.
// Part of `npm run build`, so `npm ci && npm start` builds it; nothing is fetched at run time.
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'dist', 'console');

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(here, 'src', 'main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: join(out, 'app.js'),
  legalComments: 'none',
  logLevel: 'warning',
});
await copyFile(join(here, 'index.html'), join(out, 'index.html'));
await copyFile(join(here, 'styles.css'), join(out, 'app.css'));

if (process.argv.includes('--report')) {
  for (const name of ['app.js', 'app.css', 'index.html']) {
    const file = join(out, name);
    const size = (await stat(file)).size;
    const gz = gzipSync(readFileSync(file)).length;
    console.log(`${name}: ${(size / 1024).toFixed(1)} KiB (${(gz / 1024).toFixed(1)} KiB gzip)`);
  }
}
