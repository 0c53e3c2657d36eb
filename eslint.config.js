import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import layers from './scripts/eslint-layers.js';

/**
 * What each src/ folder may import besides itself: the arrows of docs/architecture.md, enforced.
 * Read top to bottom; a folder only names folders further down. '.' is src/main.ts.
 */
const FOUNDATION = ['errors', 'obs', 'config', 'lib'];
const LAYERS = {
  '.': '*',
  proxy: ['auth', 'routing', 'traffic', 'upstream', 'store', 'schema', 'tls', ...FOUNDATION],
  admin: ['auth', 'controller', 'control', 'store', 'schema', 'tls', ...FOUNDATION],
  cli: ['auth', 'store', 'schema', ...FOUNDATION],
  cluster: ['store', 'traffic', ...FOUNDATION],
  controller: ['control', 'store', 'schema', ...FOUNDATION],
  control: ['store', 'schema', ...FOUNDATION],
  traffic: ['auth', 'upstream', 'store', 'schema', ...FOUNDATION],
  auth: ['store', 'schema', ...FOUNDATION],
  routing: ['store', 'schema', ...FOUNDATION],
  upstream: ['schema', ...FOUNDATION],
  store: ['schema', ...FOUNDATION],
  schema: ['errors', 'lib'],
  tls: [...FOUNDATION],
  errors: ['lib'],
  obs: ['lib'],
  config: ['lib'],
  lib: [],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'config/examples/**', '.tmp/**', '.scratch*/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { layers },
    rules: { 'layers/imports': ['error', { srcDir: 'src', allow: LAYERS }] },
  },
);
