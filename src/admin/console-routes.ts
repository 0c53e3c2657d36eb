import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdminMount } from './mount.js';

/**
 * The console (docs/console.md) at /ui/: three static files built by `npm run build` into
 * dist/console. They are public; everything they show comes from /v1, which needs the admin
 * token. Read once at start: they are small and never change while the gateway runs.
 */

// dist/admin → dist/console, and src/admin → dist/console when run from source (tests, tsx).
const DEFAULT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'console');

/**
 * No inline script or style, nothing from another origin: an injected string can neither run
 * nor phone home. `connect-src 'self'` keeps the admin token on this listener.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

function load(dir: string): Map<string, Buffer> | null {
  const files = new Map<string, Buffer>();
  try {
    for (const name of Object.keys(FILES)) files.set(name, readFileSync(join(dir, name)));
  } catch {
    return null;
  }
  return files;
}

export function consoleRoutes(opts: { dir?: string } = {}): AdminMount {
  const files = load(opts.dir ?? DEFAULT_DIR);
  return (app) => {
    app.get('/ui', (c) => c.redirect('/ui/', 301));
    app.get('/ui/*', (c) => {
      const name = c.req.path === '/ui/' ? 'index.html' : c.req.path.slice('/ui/'.length);
      const type = FILES[name];
      const body = type ? files?.get(name) : undefined;
      if (!type || !body) {
        const message = files ? 'no such console file' : 'the console is not built: run `npm run build`';
        return c.text(message, 404, { ...SECURITY_HEADERS, 'cache-control': 'no-store' });
      }
      // The page is tiny and revalidated each time, so a new build is picked up on reload.
      return c.body(new Uint8Array(body), 200, { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-cache' });
    });
  };
}
