import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { registerGatewayHeaderNames } from '../../../src/upstream/known-header-names.js';

const require = createRequire(import.meta.url);

describe('registerGatewayHeaderNames', () => {
  it("puts the gateway's forwarded header names in undici's well-known table, as undici itself would map them", () => {
    expect(registerGatewayHeaderNames()).toBe(true);
    const { headerNameLowerCasedRecord } = require('undici/lib/core/constants.js') as { headerNameLowerCasedRecord: Record<string, string> };
    for (const name of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']) {
      expect(headerNameLowerCasedRecord[name]).toBe(name);
    }
    // Names undici already knew keep their entries.
    expect(headerNameLowerCasedRecord['Content-Type']).toBe('content-type');
  });

  it('leaves undici validating names it still does not know', () => {
    registerGatewayHeaderNames();
    const Request = require('undici/lib/core/request.js') as new (origin: string, opts: object, handler: object) => unknown;
    const handler = { onConnect() {}, onHeaders() {}, onData() {}, onComplete() {}, onError() {} };
    expect(() => new Request('http://127.0.0.1:1', { path: '/', method: 'GET', headers: ['x-request-id', 'abc', 'bad name', 'v'] }, handler)).toThrow(/invalid header key/);
    expect(() => new Request('http://127.0.0.1:1', { path: '/', method: 'GET', headers: ['x-request-id', 'a\nb'] }, handler)).toThrow(/invalid x-request-id header/);
  });
});
