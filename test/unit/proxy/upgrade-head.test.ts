import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { gatewayHops } from '../../../src/proxy/request-head.js';
import { plainRequestHead, websocketAccept } from '../../../src/proxy/upgrade.js';

describe('upgrade helpers', () => {
  it('computes the RFC 6455 accept value', () => {
    expect(websocketAccept('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('rewrites an h2c upgrade head as a plain request, keeping every other header', () => {
    const req = {
      method: 'POST',
      url: '/e/x/y?z=1',
      httpVersionMajor: 1,
      httpVersionMinor: 1,
      rawHeaders: ['Host', 'gw', 'Connection', 'Upgrade, HTTP2-Settings', 'Upgrade', 'h2c', 'HTTP2-Settings', 'AAMA', 'Content-Length', '5'],
    } as unknown as IncomingMessage;
    expect(plainRequestHead(req).toString('latin1')).toBe(
      'POST /e/x/y?z=1 HTTP/1.1\r\nHost: gw\r\nConnection: HTTP2-Settings\r\nHTTP2-Settings: AAMA\r\nContent-Length: 5\r\n\r\n',
    );
  });

  it('counts modelgate hops in Via', () => {
    expect(gatewayHops('1.1 edge')).toBe(0);
    expect(gatewayHops('1.1 modelgate, 1.1 edge, 1.1 modelgate')).toBe(2);
  });
});
