import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTING_NAMES } from '../../../src/config/settings.js';

describe('docs/settings.md', () => {
  it('documents every setting', () => {
    const doc = readFileSync(new URL('../../../docs/settings.md', import.meta.url), 'utf8');
    const missing = SETTING_NAMES.filter((name) => !doc.includes(`| \`${name}\` |`));
    expect(missing).toEqual([]);
  });
});
