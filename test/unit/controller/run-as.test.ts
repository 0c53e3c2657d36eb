import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSettings, SettingsError } from '../../../src/config/settings.js';
import { resolveRunAs } from '../../../src/controller/run-as.js';
import { prepareWorkDir, releaseWorkDir } from '../../../src/controller/work-dir.js';

describe('CONTROLLER_RUN_AS', () => {
  it('accepts a name, a uid or uid:gid and refuses anything else with one line', () => {
    for (const v of ['modelgate-replica', '1001', '1001:1001', '_svc$']) expect(loadSettings({ env: { CONTROLLER_RUN_AS: v } }).CONTROLLER_RUN_AS).toBe(v);
    expect(() => loadSettings({ env: { CONTROLLER_RUN_AS: 'a b' } })).toThrow(SettingsError);
    expect(() => loadSettings({ env: { CONTROLLER_RUN_AS: '1001:' } })).toThrow(/CONTROLLER_RUN_AS: must be a user name, a uid or uid:gid/);
  });

  it('resolves ids and refuses root, unknown users and a switch the gateway cannot make', () => {
    expect(resolveRunAs('4242:4343', 0)).toMatchObject({ uid: 4242, gid: 4343 });
    expect(resolveRunAs('4242', 0)).toMatchObject({ uid: 4242, gid: 4242, name: '4242' });
    expect(() => resolveRunAs('0', 0)).toThrow(/must not be root/);
    expect(() => resolveRunAs('root', 0)).toThrow(/must not be root/);
    expect(() => resolveRunAs('4242:0', 0)).toThrow(/must not be root/);
    expect(() => resolveRunAs('no-such-user-mg', 0)).toThrow(/^CONTROLLER_RUN_AS: no user named no-such-user-mg/);
    expect(() => resolveRunAs('4242', 1000)).toThrow(/needs the gateway to run as root/);
    expect(resolveRunAs('1000', 1000)).toMatchObject({ uid: 1000 });
  });
});

describe('replica work dir', () => {
  const root = mkdtempSync(join(tmpdir(), 'mg-workdir-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** Runs `fn` with os.tmpdir() pointing into this suite's own folder, so nothing lands in the real /tmp. */
  function inFakeTmp<T>(name: string, fn: () => T): T {
    const fakeTmp = join(root, name);
    mkdirSync(fakeTmp, { recursive: true });
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = fakeTmp;
    try {
      return fn();
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  }

  it('defaults outside DATA_DIR, stable per DATA_DIR, 0711', () => {
    inFakeTmp('tmp-defaults', () => {
      const a = prepareWorkDir({ DATA_DIR: join(root, 'data-a'), ephemeral: false });
      const again = prepareWorkDir({ DATA_DIR: join(root, 'data-a'), ephemeral: false });
      const b = prepareWorkDir({ DATA_DIR: join(root, 'data-b'), ephemeral: false });
      expect(a).toBe(again);
      expect(a).not.toBe(b);
      expect(a.startsWith(join(root, 'data-a'))).toBe(false);
      expect(statSync(a).mode & 0o777).toBe(0o711);
      expect(prepareWorkDir({ DATA_DIR: '', ephemeral: true })).toContain(`run-${process.pid}`);
    });
  });

  it('is released on stop: per-run whole, DATA_DIR-keyed only when empty, CONTROLLER_WORK_DIR never', async () => {
    const keyed = { DATA_DIR: join(root, 'data-e'), ephemeral: false };
    const perRun = { DATA_DIR: '', ephemeral: true };
    const [emptyKeyed, fullKeyed, run] = inFakeTmp('tmp-release', () => [
      prepareWorkDir(keyed),
      prepareWorkDir({ DATA_DIR: join(root, 'data-f'), ephemeral: false }),
      prepareWorkDir(perRun),
    ]);
    mkdirSync(join(fullKeyed, 'replica-1'));
    mkdirSync(join(run, 'replica-2'));
    await releaseWorkDir(emptyKeyed, keyed);
    await releaseWorkDir(fullKeyed, { DATA_DIR: join(root, 'data-f'), ephemeral: false });
    await releaseWorkDir(run, perRun);
    expect(existsSync(emptyKeyed)).toBe(false);
    expect(existsSync(join(fullKeyed, 'replica-1'))).toBe(true);
    expect(existsSync(run)).toBe(false);
    const own = join(root, 'operators');
    mkdirSync(own);
    await releaseWorkDir(own, { DATA_DIR: '', CONTROLLER_WORK_DIR: own, ephemeral: true });
    expect(existsSync(own)).toBe(true);
  });

  it('refuses a CONTROLLER_WORK_DIR inside DATA_DIR', () => {
    const data = join(root, 'data-c');
    expect(() => prepareWorkDir({ DATA_DIR: data, CONTROLLER_WORK_DIR: join(data, 'services'), ephemeral: false })).toThrow(/^CONTROLLER_WORK_DIR: .* is inside DATA_DIR/);
    expect(prepareWorkDir({ DATA_DIR: data, CONTROLLER_WORK_DIR: join(root, 'elsewhere'), ephemeral: false })).toBe(join(root, 'elsewhere'));
  });

  it('refuses a planted symlink where its base directory goes', () => {
    const fakeTmp = join(root, 'tmp');
    mkdirSync(fakeTmp);
    symlinkSync(root, join(fakeTmp, `modelgate-replicas-${process.getuid?.()}`));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = fakeTmp;
    try {
      expect(() => prepareWorkDir({ DATA_DIR: join(root, 'data-d'), ephemeral: false })).toThrow(/is not a directory/);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });
});
