import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSettings, SettingsError } from '../../../src/config/settings.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mg-settings-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('loadSettings', () => {
  it('gives the design defaults', () => {
    const s = loadSettings({ env: {} });
    expect(s.GATEWAY_HOST).toBe('0.0.0.0');
    expect(s.GATEWAY_PORT).toBe(8080);
    expect(s.ADMIN_HOST).toBe('127.0.0.1');
    expect(s.ADMIN_PORT).toBe(8081);
    expect(s.DATA_DIR).toBe('./data');
    expect(s.REDIS_PREFIX).toBe('mg:');
    expect(s.APPS_DOMAIN).toBe('localhost');
    expect(s.WORKERS).toBe(1);
    expect(s.HOLD_TIMEOUT_MS).toBe(30000);
    expect(s.LOG_LEVEL).toBe('info');
    expect(s.CONNECT_TIMEOUT_MS).toBe(5000);
    expect(s.FIRST_BYTE_TIMEOUT_MS).toBe(300000);
    expect(s.IDLE_TIMEOUT_MS).toBe(300000);
    expect(s.BODY_LIMIT_BYTES).toBe(100 * 1024 * 1024);
    expect(s.ephemeral).toBe(false);
    expect(s.HEAP_GROWING_PERCENT).toBe(30);
  });

  it('takes HEAP_GROWING_PERCENT from 0 (V8 decides) to 300', () => {
    expect(loadSettings({ env: { HEAP_GROWING_PERCENT: '0' } }).HEAP_GROWING_PERCENT).toBe(0);
    expect(loadSettings({ env: { HEAP_GROWING_PERCENT: '100' } }).HEAP_GROWING_PERCENT).toBe(100);
    expect(() => loadSettings({ env: { HEAP_GROWING_PERCENT: '301' } })).toThrow(SettingsError);
    expect(() => loadSettings({ env: { HEAP_GROWING_PERCENT: '-1' } })).toThrow(SettingsError);
  });

  it('lets the environment override the YAML file', () => {
    const dir = tempDir();
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'gateway_port: 9000\napps_domain: apps.example.com\n');
    const s = loadSettings({ configFile: file, env: { GATEWAY_PORT: '9100' } });
    expect(s.GATEWAY_PORT).toBe(9100);
    expect(s.APPS_DOMAIN).toBe('apps.example.com');
  });

  it('names every bad setting in one line', () => {
    try {
      loadSettings({ env: { GATEWAY_PORT: '70000', REDIS_URL: 'http://x', LOG_LEVEL: 'loud' } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SettingsError);
      const msg = (err as Error).message;
      expect(msg).not.toContain('\n');
      expect(msg).toContain('GATEWAY_PORT');
      expect(msg).toContain('REDIS_URL');
      expect(msg).toContain('LOG_LEVEL');
    }
  });

  it('requires TOKEN_SECRET with Redis', () => {
    expect(() => loadSettings({ env: { REDIS_URL: 'redis://127.0.0.1:1' } })).toThrow(/TOKEN_SECRET/);
  });

  it('rejects unknown keys and bad YAML in the config file', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.yaml'), 'gatway_port: 1\n');
    expect(() => loadSettings({ configFile: join(dir, 'a.yaml'), env: {} })).toThrow(/gatway_port: unknown setting/);
    writeFileSync(join(dir, 'b.yaml'), 'a: [\n');
    expect(() => loadSettings({ configFile: join(dir, 'b.yaml'), env: {} })).toThrow(/not valid YAML/);
    expect(() => loadSettings({ configFile: join(dir, 'missing.yaml'), env: {} })).toThrow(/cannot read/);
  });

  it('treats DATA_DIR= empty or --ephemeral as memory only', () => {
    expect(loadSettings({ env: { DATA_DIR: '' } }).ephemeral).toBe(true);
    expect(loadSettings({ env: {}, ephemeral: true }).ephemeral).toBe(true);
  });

  it('reads booleans in the usual spellings, any case', () => {
    for (const word of ['true', 'TRUE', '1', 'yes', 'Yes', 'on']) expect(loadSettings({ env: { ACCESS_LOG: word } }).ACCESS_LOG).toBe(true);
    for (const word of ['false', 'False', '0', 'no', 'NO', 'off']) expect(loadSettings({ env: { ACCESS_LOG: word } }).ACCESS_LOG).toBe(false);
  });

  it('refuses a boolean it cannot read, naming the setting', () => {
    for (const word of ['ture', 'flase', '2', 'y', '']) {
      expect(() => loadSettings({ env: { ACCESS_LOG: word } }), word).toThrow(/ACCESS_LOG: must be true or false/);
    }
    expect(() => loadSettings({ env: { CONTROLLER_ENABLED: 'enabled' } })).toThrow(/CONTROLLER_ENABLED/);
  });
});
