import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { AdminHostPolicy, hostnameOf } from '../../../src/admin/host-policy.js';

describe('admin Host policy', () => {
  it('parses Host values', () => {
    expect(hostnameOf('LocalHost:8081')).toBe('localhost');
    expect(hostnameOf('localhost.')).toBe('localhost');
    expect(hostnameOf('[::1]:8081')).toBe('::1');
    expect(hostnameOf('[::1]')).toBe('::1');
    for (const bad of ['', ':8081', 'a:b', '[::1', '[::1]x', 'h:99999999']) expect(hostnameOf(bad)).toBeNull();
  });

  it('allows its own names and addresses only', () => {
    const p = new AdminHostPolicy({ adminHost: '10.1.2.3', allowedHosts: ['Admin.Internal'] });
    for (const ok of ['10.1.2.3:8081', 'localhost', '127.0.0.1', '[::1]:1', 'admin.internal', `${hostname().toUpperCase()}:8081`, undefined]) expect(p.allows(ok, '10.1.2.3'), String(ok)).toBe(true);
    for (const bad of ['evil.example', '10.1.2.4', 'admin.internal.evil', '127.0.0.2', '[::2]']) expect(p.allows(bad, '10.1.2.3'), bad).toBe(false);
    // The socket's own local address counts (a dual-stack socket reports IPv4 as ::ffff:a.b.c.d).
    expect(p.allows('192.0.2.7', '::ffff:192.0.2.7')).toBe(true);
    expect(p.allows('192.0.2.7', '192.0.2.8')).toBe(false);
  });

  it('accepts the machine own addresses when bound to a wildcard, names still not', () => {
    const p = new AdminHostPolicy({ adminHost: '::', allowedHosts: [] });
    expect(p.allows('[::1]', undefined)).toBe(true);
    expect(p.allows('127.0.0.1:8081', undefined)).toBe(true);
    expect(p.allows('evil.example', undefined)).toBe(false);
    expect(p.allows('198.51.100.77', undefined)).toBe(false);
  });
});
