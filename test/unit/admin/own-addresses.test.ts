import { describe, expect, it } from 'vitest';
import { OwnAddresses } from '../../../src/admin/own-addresses.js';

describe('OwnAddresses', () => {
  it('matches a wildcard listener by any local name on its port', () => {
    const own = new OwnAddresses('apps.example.com');
    own.add('0.0.0.0', 8080);
    for (const url of ['http://127.0.0.1:8080/', 'http://localhost:8080', 'http://[::1]:8080/x', 'http://chat.apps.example.com:8080/', 'http://0.0.0.0:8080']) {
      expect(own.matches(url), url).not.toBeNull();
    }
    for (const url of ['http://127.0.0.1:8081/', 'http://10.9.9.9:8080/', 'http://example.org:8080/', 'https://127.0.0.1/']) {
      expect(own.matches(url), url).toBeNull();
    }
  });

  it('matches a loopback listener by loopback names only, and default ports', () => {
    const own = new OwnAddresses('localhost');
    own.add('127.0.0.1', 80);
    expect(own.matches('http://localhost/')).not.toBeNull();
    expect(own.matches('http://x.localhost/')).not.toBeNull();
    expect(own.matches('https://localhost/')).toBeNull();
    expect(own.matches('not a url')).toBeNull();
  });
});
