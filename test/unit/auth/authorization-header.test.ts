import { describe, expect, it } from 'vitest';
import { MAX_TOKEN_LENGTH, isWellFormedToken, tokenFromAuthorization } from '../../../src/auth/authorization-header.js';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

describe('tokenFromAuthorization', () => {
  it.each(['BackendAI', 'backendai', 'BACKENDAI', 'Bearer', 'bearer', 'bEaReR'])('accepts scheme %s case-insensitively', (scheme) => {
    expect(tokenFromAuthorization(`${scheme} ${JWT}`)).toBe(JWT);
  });

  it.each([undefined, '', 'BackendAI', 'Bearer', `Basic ${JWT}`, `Token ${JWT}`, `BackendAIx ${JWT}`, `Bear ${JWT}`, ` ${JWT}`, JWT])(
    'missing or unknown scheme %j → undefined (GW_AUTH_MISSING)',
    (header) => {
      expect(tokenFromAuthorization(header)).toBeUndefined();
    },
  );

  it('keeps whatever follows the single space, for the shape check to refuse', () => {
    expect(tokenFromAuthorization(`BackendAI  ${JWT}`)).toBe(` ${JWT}`);
    expect(tokenFromAuthorization(`Bearer ${JWT} extra`)).toBe(`${JWT} extra`);
  });
});

describe('isWellFormedToken', () => {
  it('accepts a compact JWS', () => {
    expect(isWellFormedToken(JWT)).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['leading space', ` ${JWT}`],
    ['inner space', `${JWT} extra`],
    ['tab', `${JWT}\t`],
    ['two parts', 'abc.def'],
    ['four parts', `${JWT}.x`],
    ['empty signature (alg none)', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'],
    ['empty middle', 'abc..def'],
    ['quote', 'a"b.c.d'],
    ['non-ASCII', 'äbc.def.ghi'],
    ['over the limit', `${'a'.repeat(MAX_TOKEN_LENGTH)}.b.c`],
    ['100 KB', `${'a'.repeat(50_000)}.${'b'.repeat(50_000)}.c`],
  ])('refuses %s', (_name, token) => {
    expect(isWellFormedToken(token)).toBe(false);
  });
});
