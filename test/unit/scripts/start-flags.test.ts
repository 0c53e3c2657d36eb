import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = process.cwd();
const read = (file: string) => readFileSync(join(root, file), 'utf8');

/** The node flags in `const START_NODE_FLAGS ... = [...]` of bench/lib.ts. */
function benchFlags(): string[] {
  const m = /START_NODE_FLAGS[^=]*=\s*\[([^\]]*)\]/.exec(read('bench/lib.ts'));
  if (m === null) throw new Error('START_NODE_FLAGS not found in bench/lib.ts');
  return [...m[1].matchAll(/'([^']+)'/g)].map((x) => x[1]);
}

/**
 * `npm start`, the Docker image and the benches must run the gateway with the same node flags
 * (docs/performance.md, "Garbage collection on one core"): a bench that measures other flags
 * than users run would flatter or wrong the figures.
 */
describe('node flags of the gateway process', () => {
  it('are the same for npm start, the Docker image and the benches', () => {
    const flags = benchFlags();
    expect(flags).toContain('--single-threaded-gc');
    expect(flags).toContain('--no-memory-reducer');
    const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start;
    expect(start).toContain(`node ${flags.join(' ')} dist/main.js`);
    const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(read('Dockerfile'));
    expect(entrypoint).not.toBeNull();
    expect(JSON.parse(entrypoint![1])).toEqual(['node', ...flags, 'dist/main.js']);
  });

  it('are accepted by this node, and cluster workers inherit them', () => {
    const code =
      "const c = require('node:cluster'); if (c.isPrimary) { const w = c.fork(); w.on('message', (m) => { console.log(m); w.kill(); }); } else process.send(process.execArgv.join(' '));";
    const script = join(mkdtempSync(join(tmpdir(), 'start-flags-')), 'fork.cjs');
    writeFileSync(script, code);
    const r = spawnSync(process.execPath, [...benchFlags(), script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(benchFlags().join(' '));
  });
});
