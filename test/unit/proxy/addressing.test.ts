import { describe, expect, it } from 'vitest';
import { Addresser, AddressKind, isDnsLabel } from '../../../src/proxy/addressing.js';

describe('Addresser', () => {
  const a = new Addresser('localhost');

  it('maps {name}.{APPS_DOMAIN}[:port] to the endpoint, path untouched', () => {
    expect(a.resolve('my-llm.localhost:8080', '/v1/chat?x=1')).toEqual({ kind: AddressKind.Endpoint, name: 'my-llm', path: '/v1/chat?x=1' });
    expect(a.resolve('my-llm.localhost', '/')).toMatchObject({ name: 'my-llm' });
    expect(a.resolve('MY-LLM.LOCALHOST', '/')).toMatchObject({ name: 'my-llm' });
    expect(a.resolve('my-llm.localhost.', '/')).toMatchObject({ name: 'my-llm' });
  });

  it('host-based addressing proxies the gateway paths too', () => {
    expect(a.resolve('x.localhost', '/healthz')).toMatchObject({ kind: AddressKind.Endpoint, name: 'x', path: '/healthz' });
  });

  it('does not take deeper sub-domains or the bare domain as endpoints', () => {
    expect(a.resolve('a.b.localhost', '/')).toMatchObject({ kind: AddressKind.NotFound });
    expect(a.resolve('localhost:8080', '/')).toMatchObject({ kind: AddressKind.NotFound });
    expect(a.resolve('.localhost', '/')).toMatchObject({ kind: AddressKind.NotFound });
  });

  it('flags a malformed label under the apps domain', () => {
    expect(a.resolve('bad_name.localhost', '/').kind).toBe(AddressKind.BadHost);
    expect(a.resolve('-x.localhost', '/').kind).toBe(AddressKind.BadHost);
  });

  it('maps /e/{name}/rest on any other host and strips the prefix', () => {
    expect(a.resolve('127.0.0.1:8080', '/e/chat/v1/x')).toEqual({ kind: AddressKind.Endpoint, name: 'chat', path: '/v1/x' });
    expect(a.resolve(undefined, '/e/chat')).toMatchObject({ name: 'chat', path: '/' });
    expect(a.resolve('example.com', '/e/chat?q=1')).toMatchObject({ name: 'chat', path: '/?q=1' });
    expect(a.resolve('example.com', '/e/Chat/')).toMatchObject({ kind: AddressKind.NotFound });
    expect(a.resolve('example.com', '/e/%63hat/')).toMatchObject({ kind: AddressKind.NotFound });
    expect(a.resolve('example.com', '/e//x')).toMatchObject({ kind: AddressKind.NotFound });
  });

  it('serves /healthz and /readyz only on non-endpoint hosts, everything else is not found', () => {
    expect(a.resolve('127.0.0.1', '/healthz').kind).toBe(AddressKind.Healthz);
    expect(a.resolve('127.0.0.1', '/readyz?verbose=1').kind).toBe(AddressKind.Readyz);
    expect(a.resolve('127.0.0.1', '/healthzx').kind).toBe(AddressKind.NotFound);
    expect(a.resolve('127.0.0.1', '/').kind).toBe(AddressKind.NotFound);
  });

  it('ignores IPv6 literal hosts for host-based addressing', () => {
    expect(a.resolve('[::1]:8080', '/e/x/').kind).toBe(AddressKind.Endpoint);
    expect(a.resolve('[::1]', '/').kind).toBe(AddressKind.NotFound);
  });

  it('works with a multi-label apps domain', () => {
    const b = new Addresser('apps.example.com');
    expect(b.resolve('llm.apps.example.com', '/')).toMatchObject({ kind: AddressKind.Endpoint, name: 'llm' });
    expect(b.resolve('llm.example.com', '/').kind).toBe(AddressKind.NotFound);
  });
});

describe('isDnsLabel', () => {
  it('accepts 1-63 of a-z 0-9 - without leading/trailing dash', () => {
    expect(isDnsLabel('a')).toBe(true);
    expect(isDnsLabel('a-1')).toBe(true);
    expect(isDnsLabel('x'.repeat(63))).toBe(true);
    expect(isDnsLabel('x'.repeat(64))).toBe(false);
    expect(isDnsLabel('')).toBe(false);
    expect(isDnsLabel('-a')).toBe(false);
    expect(isDnsLabel('a-')).toBe(false);
    expect(isDnsLabel('A')).toBe(false);
    expect(isDnsLabel('a.b')).toBe(false);
  });
});
