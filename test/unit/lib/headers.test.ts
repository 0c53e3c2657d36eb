import { describe, expect, it } from 'vitest';
import { HOP_BY_HOP, connectionListedHeaders, dropListed, isSafeRequestId } from '../../../src/lib/headers.js';

describe('header rules', () => {
  it('knows the hop-by-hop headers of RFC 9110', () => {
    for (const h of ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization']) {
      expect(HOP_BY_HOP.has(h)).toBe(true);
    }
    expect(HOP_BY_HOP.has('content-type')).toBe(false);
  });

  it('reads the names a Connection header lists, ignoring connection options', () => {
    expect(connectionListedHeaders(undefined)).toBeNull();
    expect(connectionListedHeaders('keep-alive')).toBeNull();
    expect(connectionListedHeaders('close, Upgrade')).toBeNull();
    expect([...connectionListedHeaders('keep-alive, X-Foo ,x-bar')!]).toEqual(['x-foo', 'x-bar']);
  });

  it('drops listed names from a flat header array in place', () => {
    const flat = ['A', '1', 'X-Foo', '2', 'b', '3', 'x-foo', '4'];
    dropListed(flat, new Set(['x-foo']));
    expect(flat).toEqual(['A', '1', 'b', '3']);
  });

  it('accepts only short visible-ASCII request ids', () => {
    expect(isSafeRequestId('abc-123_XYZ')).toBe(true);
    expect(isSafeRequestId('')).toBe(false);
    expect(isSafeRequestId('a b')).toBe(false);
    expect(isSafeRequestId('a\nb')).toBe(false);
    expect(isSafeRequestId('x'.repeat(129))).toBe(false);
  });
});
