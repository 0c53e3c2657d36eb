#!/usr/bin/env node
// Runs the vitest suite and ends with the one line CI reads: `N passed, N failed`.
// Everything the run writes to the temp folder (tests, gateways, model processes, redis-server)
// goes to one folder of its own (TMPDIR), removed at the end whatever happened.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const outDir = join(process.cwd(), '.tmp');
const outFile = join(outDir, 'vitest-results.json');
mkdirSync(outDir, { recursive: true });
rmSync(outFile, { force: true });

const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${outFile}`, ...process.argv.slice(2)];
const tempRoot = mkdtempSync(join(tmpdir(), 'modelgate-test-'));
// Ctrl-C reaches vitest too; this process outlives it to clean up and print the summary.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => {});
const run = spawnSync('npx', args, { stdio: 'inherit', env: { ...process.env, TMPDIR: tempRoot } });
rmSync(tempRoot, { recursive: true, force: true });

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const results = JSON.parse(readFileSync(outFile, 'utf8'));
  passed = results.numPassedTests ?? 0;
  failed = (results.numFailedTests ?? 0) + (results.numRuntimeErrorTestSuites ?? 0);
  skipped = (results.numPendingTests ?? 0) + (results.numTodoTests ?? 0);
  // A test file that fails to load counts as a failure even though it ran no test.
  for (const suite of results.testResults ?? []) {
    if (suite.status === 'failed' && (suite.assertionResults ?? []).length === 0) failed++;
  }
} catch {
  failed = Math.max(failed, 1);
}
if (run.status !== 0 && failed === 0) failed = 1;
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || run.status !== 0 ? 1 : 0);
