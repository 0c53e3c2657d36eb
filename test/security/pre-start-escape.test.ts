import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArgumentMapper } from '../../src/controller/arguments.js';
import { createOverlay } from '../../src/controller/model-overlay.js';
import { runPreStartActions } from '../../src/controller/pre-start-actions.js';
import type { PreStartAction } from '../../src/controller/model-definition.js';

/**
 * Issue 21, finding 5: a pre-start write through `sub/../file` must land in the replica's
 * private copy, never in the user's model folder. The overlay's `sub` is a symlink to the real
 * `sub`, so the kernel resolves `overlay/sub/..` to the REAL folder: the path has to be
 * normalised before the copy-up check and the write both see it.
 */
describe('security: pre-start writes stay out of the user model folder', () => {
  let root: string;
  let real: string;
  let overlay: string;
  let home: string;

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'mg-escape-'));
    real = join(root, 'user-models');
    mkdirSync(join(real, 'sub', 'deeper'), { recursive: true });
    writeFileSync(join(real, 'config.json'), 'original');
    writeFileSync(join(real, 'sub', 'deeper', 'weights.bin'), 'weights');
    overlay = join(root, 'replica', 'model');
    home = join(root, 'replica', 'home');
    mkdirSync(home, { recursive: true });
    await createOverlay(real, overlay);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const run = (actions: PreStartAction[], confineTo?: string) =>
    runPreStartActions(actions, {
      confineTo,
      mapper: new ArgumentMapper({ '/models': overlay, '/home/work': home }),
      cwd: home,
      tmpDir: join(root, 'replica', 'tmp'),
      overlayDir: overlay,
      env: { PATH: '/usr/bin:/bin' },
      log: () => undefined,
      signal: new AbortController().signal,
    });

  const write = (filename: string, body: string): PreStartAction =>
    ({ action: 'write_file', args: { filename, body, mode: 0o644, append: false } }) as PreStartAction;

  it.each(['/models/sub/../config.json', '/models/sub/deeper/../../config.json', '/models/./sub/../config.json', '/models//sub/..//config.json'])(
    'write_file %s changes the replica copy only',
    async (filename) => {
      await run([write(filename, 'overwritten')]);
      expect(readFileSync(join(real, 'config.json'), 'utf8')).toBe('original');
      expect(readFileSync(join(overlay, 'config.json'), 'utf8')).toBe('overwritten');
    },
  );

  it('append through sub/.. keeps the user file intact', async () => {
    await run([{ action: 'write_file', args: { filename: '/models/sub/../config.json', body: '+more', mode: 0o644, append: true } } as PreStartAction]);
    expect(readFileSync(join(real, 'config.json'), 'utf8')).toBe('original');
    expect(readFileSync(join(overlay, 'config.json'), 'utf8')).toBe('original+more');
  });

  it('mkdir through sub/.. creates nothing in the user folder', async () => {
    await run([{ action: 'mkdir', args: { path: '/models/sub/deeper/../../made' } } as PreStartAction]);
    expect(() => readFileSync(join(real, 'made'))).toThrow();
    const made = run([write('/models/sub/deeper/../../made/x', 'y')]);
    await made;
    expect(() => readFileSync(join(real, 'made', 'x'))).toThrow();
    expect(readFileSync(join(overlay, 'made', 'x'), 'utf8')).toBe('y');
  });

  it('relative paths with .. are normalised too', async () => {
    // cwd is home; ../model is the overlay, so this is the same attack written relatively.
    await run([write('../model/sub/../config.json', 'rel')]);
    expect(readFileSync(join(real, 'config.json'), 'utf8')).toBe('original');
    expect(readFileSync(join(overlay, 'config.json'), 'utf8')).toBe('rel');
  });

  it('with CONTROLLER_RUN_AS, writes outside the replica directory are refused (the gateway writes with its own rights)', async () => {
    const replica = join(root, 'replica');
    const outside = join(root, 'outside.txt');
    for (const filename of [outside, '/models/../../outside.txt', '../../outside.txt']) {
      await expect(run([write(filename, 'x')], replica)).rejects.toThrow(/pre_start_actions\[0\] \(write_file\): .* is outside the replica's directories/);
    }
    await expect(run([{ action: 'mkdir', args: { path: join(root, 'made-outside') } } as PreStartAction], replica)).rejects.toThrow(/outside the replica's directories/);
    expect(() => readFileSync(outside)).toThrow();
    await run([write('/models/sub/../config.json', 'inside'), write('/home/work/a.txt', 'a'), write('b.txt', 'b')], replica);
    expect(readFileSync(join(home, 'b.txt'), 'utf8')).toBe('b');
  });
});
