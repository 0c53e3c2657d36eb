import { describe, expect, it } from 'vitest';
import { extractQueryToken } from '../../../src/proxy/upgrade.js';

describe('extractQueryToken', () => {
  it('takes the token out and keeps every other byte of the target', () => {
    expect(extractQueryToken('/ws')).toEqual({ path: '/ws', token: undefined });
    expect(extractQueryToken('/ws?a=1&b=2')).toEqual({ path: '/ws?a=1&b=2', token: undefined });
    expect(extractQueryToken('/ws?token=abc')).toEqual({ path: '/ws', token: 'abc' });
    expect(extractQueryToken('/ws?a=%20x&token=a.b.c&b=2')).toEqual({ path: '/ws?a=%20x&b=2', token: 'a.b.c' });
    expect(extractQueryToken('/ws?mytoken=1&token=t')).toEqual({ path: '/ws?mytoken=1', token: 't' });
  });

  it('decodes the value, drops every token parameter, and survives bad escapes', () => {
    expect(extractQueryToken('/?token=a%2Bb&token=second')).toEqual({ path: '/', token: 'a+b' });
    expect(extractQueryToken('/?token=%E0%A4%A')).toEqual({ path: '/', token: '' });
    expect(extractQueryToken('/?token')).toEqual({ path: '/?token', token: undefined });
  });
});
