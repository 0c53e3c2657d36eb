import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Settings } from '../../src/config/settings.js';
import { silentLogger } from '../../src/obs/logger.js';
import { parseStoredRouteTable } from '../../src/schema/route-table.js';
import { patchEndpoint, putEndpoint } from '../../src/control/endpoint-ops.js';
import { JOURNAL_FILE, STATE_FILE } from '../../src/store/journal.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { resolveSecrets } from '../../src/store/secrets.js';

/** Issue 9: the embedded store loses nothing acknowledged, across restarts and kill -9. */

const logger = silentLogger();
const roots: string[] = [];
afterAll(() => {
  for (const dir of roots) rmSync(dir, { recursive: true, force: true });
});

function freshDir(): string {
  const root = mkdtempSync(join(tmpdir(), 'mg-durable-'));
  roots.push(root);
  return join(root, 'data');
}

function version(raw: string | null): number {
  if (raw === null) return 0;
  const parsed = parseStoredRouteTable(raw);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.table.version;
}

async function seed(store: MemoryStore) {
  const { table } = await putEndpoint(store, 'llm', { routes: [{ url: 'http://127.0.0.1:9000', weight: 3 }], public: false });
  await patchEndpoint(store, 'llm', { public: true });
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const kept = { jti: 'kept', endpoint: 'llm', endpoint_id: table.id, sub: 'alice', exp, created_at: new Date().toISOString() };
  const revoked = { ...kept, jti: 'gone' };
  await store.putToken(kept);
  await store.putToken(revoked);
  await store.revokeToken('gone', exp);
  await store.putService({ name: 'llm', spec: { replicas: 2, model_folder: '/m' }, updated_at: '2024-01-01T00:00:00Z' });
  return { table, kept, exp };
}

async function expectSeeded(store: MemoryStore, seeded: Awaited<ReturnType<typeof seed>>) {
  const raw = await store.getEndpointRaw('llm');
  const table = parseStoredRouteTable(raw!);
  expect(table.ok && table.table).toMatchObject({ id: seeded.table.id, version: 2, public: true, routes: [{ url: 'http://127.0.0.1:9000', weight: 3 }] });
  expect(await store.getToken('kept')).toEqual(seeded.kept);
  expect((await store.listTokens('llm')).map((t) => t.jti).sort()).toEqual(['gone', 'kept']);
  expect(await store.listRevoked()).toEqual([{ jti: 'gone', exp: seeded.exp }]);
  expect(await store.getService('llm')).toEqual({ name: 'llm', spec: { replicas: 2, model_folder: '/m' }, updated_at: '2024-01-01T00:00:00Z' });
}

describe('MemoryStore durability', () => {
  it('restart after a clean close loads everything; folder 0700, files 0600', async () => {
    const dir = freshDir();
    const first = await MemoryStore.open({ dataDir: dir, logger });
    const seeded = await seed(first);
    await first.close();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, STATE_FILE)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, JOURNAL_FILE)).mode & 0o777).toBe(0o600);
    expect(existsSync(join(dir, 'lock'))).toBe(false);

    const second = await MemoryStore.open({ dataDir: dir, logger });
    await expectSeeded(second, seeded);
    // Versions continue where they were.
    expect((await patchEndpoint(second, 'llm', { public: false })).version).toBe(3);
    await second.close();
  });

  it('loads from journal and snapshot together (compaction mid-history, no clean close)', async () => {
    const dir = freshDir();
    const store = await MemoryStore.open({ dataDir: dir, logger, compactBytes: 2048 });
    const seeded = await seed(store);
    for (let i = 0; i < 30; i++) await patchEndpoint(store, 'other', { routes: [{ url: `http://127.0.0.1:${2000 + i}` }] }).catch(() => putEndpoint(store, 'other', {}));
    expect(existsSync(join(dir, STATE_FILE))).toBe(true);
    expect(readFileSync(join(dir, JOURNAL_FILE)).length).toBeGreaterThan(0);
    // Simulate a crash: copy the folder as it is now (lock included) and open the copy.
    const copy = `${dir}-copy`;
    spawnSync('cp', ['-a', dir, copy]);
    writeFileSync(join(copy, 'lock'), '999999999\n');
    const reopened = await MemoryStore.open({ dataDir: copy, logger });
    await expectSeeded(reopened, seeded);
    expect(version(await reopened.getEndpointRaw('other'))).toBe(version(await store.getEndpointRaw('other')));
    await reopened.close();
    await store.close();
  });

  it('a corrupt state file stops start-up with a clear message and is left untouched', async () => {
    const dir = freshDir();
    const store = await MemoryStore.open({ dataDir: dir, logger });
    await putEndpoint(store, 'x', {});
    await store.close();
    const file = join(dir, STATE_FILE);
    const garbage = readFileSync(file, 'utf8').replace('"version":1', '"version":"one"');
    writeFileSync(file, garbage);
    const err = (await MemoryStore.open({ dataDir: dir, logger }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/endpoints\.x: version/);
    expect(err.message).toMatch(/move it aside \(mv /);
    expect(readFileSync(file, 'utf8')).toBe(garbage);
    // The failed start released the lock: fixing the file is enough.
    expect(existsSync(join(dir, 'lock'))).toBe(false);

    writeFileSync(file, '{not json');
    await expect(MemoryStore.open({ dataDir: dir, logger })).rejects.toThrow(/not JSON/);
    expect(readFileSync(file, 'utf8')).toBe('{not json');
  });

  it('a bad journal line in the middle stops start-up; a torn last line is truncated', async () => {
    const dir = freshDir();
    const store = await MemoryStore.open({ dataDir: dir, logger });
    await putEndpoint(store, 'x', {});
    await patchEndpoint(store, 'x', { public: true });
    // Keep the journal: copy it before the clean close compacts it away.
    const journal = readFileSync(join(dir, JOURNAL_FILE), 'utf8');
    await store.close();
    rmSync(join(dir, STATE_FILE));

    writeFileSync(join(dir, JOURNAL_FILE), journal + '{"seq":3,"op":"endpoint.put"');
    const torn = await MemoryStore.open({ dataDir: dir, logger });
    expect(version(await torn.getEndpointRaw('x'))).toBe(2);
    await torn.close();

    rmSync(join(dir, STATE_FILE));
    const lines = journal.trimEnd().split('\n');
    const broken = `${lines[0]}\n{"seq":2,"op":"nonsense"}\n${lines[1]}\n`;
    writeFileSync(join(dir, JOURNAL_FILE), broken);
    await expect(MemoryStore.open({ dataDir: dir, logger })).rejects.toThrow(/journal\.ndjson.*line 2/);
    expect(readFileSync(join(dir, JOURNAL_FILE), 'utf8')).toBe(broken);
  });

  it('refuses a folder locked by a live process, takes over a stale lock', async () => {
    const dir = freshDir();
    await (await MemoryStore.open({ dataDir: dir, logger })).close();

    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      writeFileSync(join(dir, 'lock'), `${holder.pid}\n`);
      await expect(MemoryStore.open({ dataDir: dir, logger })).rejects.toThrow(new RegExp(`in use by process ${holder.pid}`));
      expect(readFileSync(join(dir, 'lock'), 'utf8')).toBe(`${holder.pid}\n`);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
    // The holder is dead now: its lock is stale.
    const store = await MemoryStore.open({ dataDir: dir, logger });
    expect(readFileSync(join(dir, 'lock'), 'utf8').trim()).toBe(String(process.pid));
    // A second store in this same process is refused too.
    await expect(MemoryStore.open({ dataDir: dir, logger })).rejects.toThrow(/already open in this process/);
    await store.close();
  });

  it('survives kill -9 at random moments with every acknowledged write', async () => {
    const dir = freshDir();
    const child = join(import.meta.dirname, '../support/store-writer-child.ts');
    const endpointVersions = new Map<string, number>();
    const tokens = new Set<string>();
    const revoked = new Set<string>();
    const services = new Map<string, number>();
    let totalAcks = 0;

    for (let round = 0; round < 10; round++) {
      const proc = spawn(process.execPath, ['--import', 'tsx', child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let buffer = '';
      let stderr = '';
      let ready = false;
      let acksThisRound = 0;
      proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      const readyOrExit = new Promise<void>((resolve) => {
        proc.stdout.on('data', (d: Buffer) => {
          buffer += d.toString();
          let nl: number;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = JSON.parse(buffer.slice(0, nl)) as { t: string; name?: string; version?: number; jti?: string; gen?: number; n?: number };
            buffer = buffer.slice(nl + 1);
            if (line.t === 'ready') {
              ready = true;
              resolve();
              continue;
            }
            acksThisRound++;
            if (line.t === 'ep') endpointVersions.set(line.name!, Math.max(endpointVersions.get(line.name!) ?? 0, line.version!));
            else if (line.t === 'token') tokens.add(line.jti!);
            else if (line.t === 'revoke') revoked.add(line.jti!);
            else if (line.t === 'svc') services.set(line.name!, Math.max(services.get(line.name!) ?? -1, line.gen! * 1e6 + line.n!));
          }
        });
        void exited.then(() => resolve());
      });
      await readyOrExit;
      expect(ready, `writer did not start: ${stderr}`).toBe(true);
      await new Promise((r) => setTimeout(r, 30 + Math.random() * 200));
      proc.kill('SIGKILL');
      await exited;
      totalAcks += acksThisRound;

      const store = await MemoryStore.open({ dataDir: dir, logger });
      try {
        for (const [name, v] of endpointVersions) expect(version(await store.getEndpointRaw(name)), `round ${round} ${name}`).toBeGreaterThanOrEqual(v);
        for (const jti of tokens) expect(await store.getToken(jti), `round ${round} token`).not.toBeNull();
        const revokedNow = new Set((await store.listRevoked()).map((r) => r.jti));
        for (const jti of revoked) expect(revokedNow.has(jti), `round ${round} revocation`).toBe(true);
        for (const [name, n] of services) {
          const spec = (await store.getService(name))?.spec as { gen: number; n: number } | undefined;
          expect(spec ? spec.gen * 1e6 + spec.n : -1, `round ${round} service ${name}`).toBeGreaterThanOrEqual(n);
        }
      } finally {
        await store.close();
      }
      // Let the next writer start from the state the crash left, not from our clean close.
      if (round % 2 === 0) appendFileSync(join(dir, JOURNAL_FILE), '{"seq":');
    }
    expect(totalAcks).toBeGreaterThan(50);
  }, 60_000);
});

describe('resolveSecrets', () => {
  const base = { ADMIN_TOKEN: undefined, TOKEN_SECRET: undefined, ephemeral: false } as const;
  const settings = (over: Partial<Settings>): Settings => ({ ...base, DATA_DIR: freshDir(), ...over }) as unknown as Settings;

  it('generates once, saves 0600 in DATA_DIR, reuses on the next start', async () => {
    const s = settings({});
    const first = await resolveSecrets(s, logger);
    expect(first.generated).toEqual({ adminToken: true, tokenSecret: true });
    expect(first.adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.tokenSecret).not.toBe(first.adminToken);
    expect(statSync(join(s.DATA_DIR, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(statSync(join(s.DATA_DIR, 'token-secret')).mode & 0o777).toBe(0o600);
    const second = await resolveSecrets(s, logger);
    expect(second).toEqual({ ...first, generated: { adminToken: false, tokenSecret: false } });
  });

  it('explicit settings win and nothing is written for them', async () => {
    const s = settings({ ADMIN_TOKEN: 'a'.repeat(20), TOKEN_SECRET: 'b'.repeat(40) });
    const r = await resolveSecrets(s, logger);
    expect(r).toEqual({ adminToken: 'a'.repeat(20), tokenSecret: 'b'.repeat(40), generated: { adminToken: false, tokenSecret: false } });
    expect(existsSync(join(s.DATA_DIR, 'admin-token'))).toBe(false);
  });

  it('ephemeral generates without saving', async () => {
    const s = settings({ ephemeral: true });
    const r = await resolveSecrets(s, logger);
    expect(r.generated).toEqual({ adminToken: true, tokenSecret: true });
    expect(existsSync(s.DATA_DIR)).toBe(false);
  });

  it('a damaged secret file is reported, never replaced', async () => {
    const s = settings({});
    await resolveSecrets(s, logger);
    writeFileSync(join(s.DATA_DIR, 'token-secret'), 'short\n');
    await expect(resolveSecrets(s, logger)).rejects.toThrow(/token-secret: holds 5 characters/);
    expect(readFileSync(join(s.DATA_DIR, 'token-secret'), 'utf8')).toBe('short\n');
  });

  it('uses a unique value per data folder', async () => {
    const a = await resolveSecrets(settings({}), logger);
    const b = await resolveSecrets(settings({}), logger);
    expect(a.tokenSecret).not.toBe(b.tokenSecret);
  });
});

describe('metered usage in the embedded store', () => {
  it('survives a restart, through the journal and through a compacted snapshot', async () => {
    const dir = freshDir();
    const minute = Math.floor(Date.now() / 60_000);
    const inc = { endpoint: 'llm', minute, token: 'j1', sub: 'alice', prompt_tokens: 5, completion_tokens: 7, requests: 1 };
    let store = await MemoryStore.open({ dataDir: dir, logger });
    await store.addUsage([inc]);
    await store.addUsage([inc, { ...inc, token: 'j2', sub: 'bob' }]);
    await store.close();
    // Replayed twice would double a counter if ops were increments: they carry absolute values.
    store = await MemoryStore.open({ dataDir: dir, logger, compactBytes: 1 });
    const q = { endpoint: 'llm', fromMinute: minute, toMinute: minute, groupBy: 'sub' as const };
    const first = await store.queryUsage(q);
    expect(first.total).toEqual({ prompt_tokens: 15, completion_tokens: 21, requests: 3 });
    await store.addUsage([inc]);
    await store.close();
    store = await MemoryStore.open({ dataDir: dir, logger });
    const second = await store.queryUsage(q);
    expect(second.total).toEqual({ prompt_tokens: 20, completion_tokens: 28, requests: 4 });
    expect(second.groups!.get('alice')).toEqual({ prompt_tokens: 15, completion_tokens: 21, requests: 3 });
    await store.close();
  });
});
