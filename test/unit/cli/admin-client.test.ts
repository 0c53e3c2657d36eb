import { describe, expect, it } from 'vitest';
import { describeApiError, parseRouteSpec, table } from '../../../src/cli/admin-client.js';

describe('cli admin-client helpers', () => {
  it('parses route specs', () => {
    expect(parseRouteSpec('http://10.0.0.1:8000')).toEqual({ url: 'http://10.0.0.1:8000' });
    expect(parseRouteSpec('r1=http://10.0.0.1:8000/v1?x=1,weight=3')).toEqual({ id: 'r1', url: 'http://10.0.0.1:8000/v1?x=1', weight: 3 });
    expect(parseRouteSpec('http://h:1,status=unhealthy')).toEqual({ url: 'http://h:1', status: 'unhealthy' });
    expect(() => parseRouteSpec('http://h:1,weight=x')).toThrow(/expected/);
  });

  it('prints aligned tables with - for empty cells', () => {
    expect(table(['A', 'LONGER'], [['x', null], ['yyyy', 2]])).toBe('A     LONGER\nx     -\nyyyy  2\n');
  });

  it('describes API errors on one line', () => {
    expect(describeApiError(400, { error: { code: 'ADM_INVALID', message: 'invalid request', details: [{ field: 'routes.0.url', message: 'bad' }] } })).toBe(
      'ADM_INVALID: invalid request (routes.0.url: bad)',
    );
    expect(describeApiError(502, 'oops')).toBe('admin API answered HTTP 502');
  });
});
