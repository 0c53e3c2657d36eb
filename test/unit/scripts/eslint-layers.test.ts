import { join } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

/** The project's own lint config, on made-up files: a wrong arrow fails, a right one passes. */
describe('lint rule layers/imports', () => {
  const eslint = new ESLint({ cwd: process.cwd() });
  const lint = async (file: string, code: string) => {
    const [result] = await eslint.lintText(code, { filePath: join(process.cwd(), file) });
    return result.messages.filter((m) => m.ruleId === 'layers/imports').map((m) => m.message);
  };

  it('lets a folder import the folders below it, type-only imports included', async () => {
    expect(await lint('src/routing/x.ts', "import type { Store } from '../store/store.js';\nexport type X = Store;\n")).toEqual([]);
    expect(await lint('src/proxy/x.ts', "export { GatewayError } from '../errors/gateway-error.js';\n")).toEqual([]);
  }, 30_000);

  it('refuses an import that points up, with what the folder may import', async () => {
    const messages = await lint('src/store/x.ts', "import type { EndpointCache } from '../routing/endpoint-cache.js';\nexport type X = EndpointCache<unknown>;\n");
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/src\/store\/ may not import src\/routing\/ \(allowed: schema, errors, obs, config, lib\)/);
  }, 30_000);

  it('refuses imports of the composition root, dynamic imports and re-exports included', async () => {
    expect(await lint('src/cli/x.ts', "export const m = () => import('../compose.js');\n")).toEqual([
      'nothing imports the composition root (src/compose.js)',
    ]);
    expect(await lint('src/lib/x.ts', "export * from '../schema/route-table.js';\n")).toHaveLength(1);
  }, 30_000);

  it('refuses a folder the table does not know', async () => {
    expect(await lint('src/newthing/x.ts', "import '../lib/headers.js';\n")).toEqual([
      'src/newthing/ has no entry in the layer table in eslint.config.js: add one saying what it may import',
    ]);
  }, 30_000);
});
