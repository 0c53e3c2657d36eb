import { describe, expect, it } from 'vitest';
import { CidrList, checkCidrs } from '../../../src/auth/cidr.js';
import { ClientAddressResolver } from '../../../src/auth/client-address.js';
import { parseIpInto } from '../../../src/auth/ip-address.js';

function words(address: string): number[] | null {
  const out = new Uint32Array(4);
  return parseIpInto(address, out) ? Array.from(out) : null;
}

describe('parseIpInto', () => {
  it('stores IPv4 as IPv4-mapped IPv6', () => {
    expect(words('10.1.2.3')).toEqual([0, 0, 0xffff, 0x0a010203]);
    expect(words('::ffff:10.1.2.3')).toEqual(words('10.1.2.3'));
    expect(words('::FFFF:a01:203')).toEqual(words('10.1.2.3'));
  });

  it.each([
    ['::', [0, 0, 0, 0]],
    ['::1', [0, 0, 0, 1]],
    ['2001:db8::1', [0x20010db8, 0, 0, 1]],
    ['2001:db8:0:0:0:0:0:1', [0x20010db8, 0, 0, 1]],
    ['fe80::1%eth0', [0xfe800000, 0, 0, 1]],
    ['[::1]', [0, 0, 0, 1]],
    ['1::', [0x00010000, 0, 0, 0]],
    ['1:2:3:4:5:6:7:8', [0x00010002, 0x00030004, 0x00050006, 0x00070008]],
    ['64:ff9b::192.0.2.33', [0x0064ff9b, 0, 0, 0xc0000221]],
  ])('parses %s', (address, expected) => {
    expect(words(address)).toEqual(expected);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', 'a.b.c.d', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', ':1', '1:', 'g::1', 'localhost', '::ffff:1.2.3'])(
    'refuses %j',
    (address) => {
      expect(words(address)).toBeNull();
    },
  );
});

describe('CidrList', () => {
  const list = CidrList.compile(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1/128']);

  it.each([
    ['10.200.3.4', true],
    ['11.0.0.1', false],
    ['::ffff:10.0.0.1', true],
    ['192.168.1.7', true],
    ['192.168.1.8', false],
    ['2001:db8:1234::5', true],
    ['2001:db9::', false],
    ['::1', true],
    ['::2', false],
    ['not-an-ip', false],
  ])('%s → %s', (address, expected) => {
    expect(list.matches(address)).toBe(expected);
  });

  it('IPv4 /0 covers every IPv4 address, IPv6 ::/0 everything', () => {
    expect(CidrList.compile(['0.0.0.0/0']).matches('203.0.113.9')).toBe(true);
    expect(CidrList.compile(['0.0.0.0/0']).matches('2001:db8::1')).toBe(false);
    expect(CidrList.compile(['::/0']).matches('2001:db8::1')).toBe(true);
  });

  it('masks host bits of the network', () => {
    expect(CidrList.compile(['10.1.2.3/16']).matches('10.1.99.99')).toBe(true);
  });

  it('checkCidrs names the first bad entry', () => {
    expect(checkCidrs(['10.0.0.0/8', '::/0'])).toBeNull();
    expect(checkCidrs(['10.0.0.0/8', '10.0.0.0/33'])).toEqual({ index: 1, message: 'prefix length must be 0-32' });
    expect(checkCidrs(['2001:db8::/129'])?.index).toBe(0);
    expect(checkCidrs(['10.0.0.0/x'])?.index).toBe(0);
    expect(checkCidrs(['example.com'])?.message).toContain('IP address or CIDR');
    expect(checkCidrs(['[::1]/128'])?.index).toBe(0);
  });
});

describe('ClientAddressResolver', () => {
  const trusted = CidrList.compile(['127.0.0.1', '10.0.0.0/8']);
  const resolver = new ClientAddressResolver(trusted);
  const resolve = (peer: string, xff?: string) => {
    const out = new Uint32Array(4);
    return resolver.resolveInto(peer, xff, out) ? Array.from(out) : null;
  };

  it('uses the peer when it is not a trusted proxy, whatever X-Forwarded-For says', () => {
    expect(resolve('203.0.113.5', '10.9.9.9')).toEqual(words('203.0.113.5'));
  });

  it('takes the rightmost untrusted hop when the peer is trusted', () => {
    expect(resolve('127.0.0.1', '198.51.100.1, 203.0.113.5, 10.0.0.2')).toEqual(words('203.0.113.5'));
    expect(resolve('::ffff:127.0.0.1', '198.51.100.1')).toEqual(words('198.51.100.1'));
  });

  it('strips ports and brackets', () => {
    expect(resolve('127.0.0.1', '203.0.113.5:4711')).toEqual(words('203.0.113.5'));
    expect(resolve('127.0.0.1', '[2001:db8::1]:443')).toEqual(words('2001:db8::1'));
  });

  it('all hops trusted: the leftmost', () => {
    expect(resolve('127.0.0.1', '10.0.0.3, 10.0.0.2')).toEqual(words('10.0.0.3'));
  });

  it('garbage in a hop the proxy vouches for: undetermined', () => {
    expect(resolve('127.0.0.1', 'unknown')).toBeNull();
  });

  it('without trusted proxies only the peer counts', () => {
    const out = new Uint32Array(4);
    expect(new ClientAddressResolver(null).resolveInto('127.0.0.1', '203.0.113.5', out)).toBe(true);
    expect(Array.from(out)).toEqual(words('127.0.0.1'));
  });
});
