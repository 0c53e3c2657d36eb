import { dirname, relative, resolve, sep } from 'node:path';

/**
 * ESLint rule `layers/imports`: a file in src/<folder>/ may import its own folder and the
 * folders its entry in the table allows, nothing else, so an import pointing the wrong way
 * fails `npm run lint`. Files directly in src/ (the composition root) are keyed '.'; no folder
 * may import them. Type-only imports count too: a type cycle is still a cycle.
 *
 * Options: [{ srcDir: 'src', allow: { folder: ['other', ...] | '*' } }]
 */

function folderOf(srcDir, file) {
  const rel = relative(srcDir, file);
  if (rel.startsWith('..') || rel === '') return null;
  const parts = rel.split(sep);
  return parts.length === 1 ? '.' : parts[0];
}

const importsRule = {
  meta: {
    type: 'problem',
    docs: { description: 'src/ folders import only the folders below them (see eslint.config.js)' },
    schema: [
      {
        type: 'object',
        properties: { srcDir: { type: 'string' }, allow: { type: 'object' } },
        required: ['allow'],
        additionalProperties: false,
      },
    ],
    messages: {
      wrongWay: "src/{{from}}/ may not import src/{{to}}/ (allowed: {{allowed}}); see the layer table in eslint.config.js and docs/architecture.md",
      unknownFolder: 'src/{{from}}/ has no entry in the layer table in eslint.config.js: add one saying what it may import',
      root: 'nothing imports the composition root (src/{{file}})',
      outside: 'src/ may not import from outside src/ ({{source}})',
    },
  },
  create(context) {
    const { srcDir = 'src', allow } = context.options[0];
    const root = resolve(context.cwd, srcDir);
    const file = context.filename;
    const from = folderOf(root, file);
    if (from === null) return {};
    const allowed = allow[from];
    if (allowed === '*') return {};

    function check(node, source) {
      if (!source || source.type !== 'Literal' || typeof source.value !== 'string' || !source.value.startsWith('.')) return;
      const target = resolve(dirname(file), source.value);
      const to = folderOf(root, target);
      if (to === null) return context.report({ node, messageId: 'outside', data: { source: source.value } });
      if (to === from) return;
      if (to === '.') return context.report({ node, messageId: 'root', data: { file: relative(root, target) } });
      if (allowed === undefined) return context.report({ node, messageId: 'unknownFolder', data: { from } });
      if (!allowed.includes(to)) {
        context.report({ node, messageId: 'wrongWay', data: { from, to, allowed: allowed.join(', ') || 'none' } });
      }
    }

    return {
      ImportDeclaration: (node) => check(node, node.source),
      ExportNamedDeclaration: (node) => check(node, node.source),
      ExportAllDeclaration: (node) => check(node, node.source),
      ImportExpression: (node) => check(node, node.source),
    };
  },
};

export default { rules: { imports: importsRule } };
