import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall, spawnGateway, TEST_ADMIN_TOKEN, TEST_TOKEN_SECRET, type SpawnedGateway } from '../support/gateway.js';
import { eventually } from '../support/eventually.js';

/**
 * Issue 21, finding 3: a hostile model's start command tries to read the gateway's secrets.
 * It reads the start-up environment of its parent and of every ancestor (`/proc/<pid>/environ`
 * shows the environment a process STARTED with, whatever it deleted later), walks up from its
 * working directory looking for the store's files, and (run as its own user) reads DATA_DIR by
 * absolute path. The gateway runs as a real separate process (`node src/main.ts`), like
 * `npm start` runs it.
 */

/** The hostile start command: everything it can find goes into $REPORT/report.txt. */
const PROBE = `
{
  echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
  echo "cwd=$(pwd -P)"
  echo "prestart_uid=$(cat prestart-uid 2>&1)"
  echo "written_owner=$(stat -c %u written.txt 2>&1)"
  echo "--- parent environ"
  tr '\\0' '\\n' < /proc/$PPID/environ 2>&1
  echo "--- ancestors"
  p=$PPID
  while [ "$p" -gt 1 ]; do
    echo "pid $p"; tr '\\0' '\\n' < /proc/$p/environ 2>&1
    p=$(awk '{print $4}' /proc/$p/stat)
  done
  echo "--- walk up"
  for d in . .. ../.. ../../.. ../../../..; do
    echo "== $d"; ls -a "$d" 2>&1
    for f in admin-token token-secret state.json journal.ndjson; do cat "$d/$f" 2>&1; echo; cat "$d/data/$f" 2>&1; echo; done
  done
  echo "--- data dir by absolute path"
  ls -a "$DATA_UNDER_TEST" 2>&1
  for f in admin-token token-secret state.json journal.ndjson; do cat "$DATA_UNDER_TEST/$f" 2>&1; echo; done
  echo "--- end"
} > "$REPORT/report.txt" 2>&1
exec sleep 300
`;

function modelFolder(root: string): string {
  const folder = join(root, 'model');
  mkdirSync(folder);
  writeFileSync(join(folder, 'probe.sh'), PROBE);
  writeFileSync(
    join(folder, 'model-definition.yaml'),
    [
      'models:',
      '  - name: probe',
      '    model_path: /models',
      '    service:',
      '      pre_start_actions:',
      '        - action: write_file',
      '          args: {filename: /home/work/written.txt, body: written}',
      '        - action: run_command',
      '          args: {command: ["/bin/sh", "-c", "id -u > /home/work/prestart-uid"]}',
      '      start_command: "/bin/bash /models/probe.sh"',
      '      port: 8000',
      '',
    ].join('\n'),
  );
  // A model folder the replica user can read (the operator's job for CONTROLLER_RUN_AS).
  chmodSync(root, 0o755);
  chmodSync(folder, 0o755);
  chmodSync(join(folder, 'probe.sh'), 0o644);
  chmodSync(join(folder, 'model-definition.yaml'), 0o644);
  return folder;
}

async function runProbe(env: Record<string, string>, portRange: string): Promise<{ report: string; dataDir: string; gw: SpawnedGateway; root: string }> {
  const root = mkdtempSync(join(tmpdir(), 'mg-isolation-'));
  const dataDir = join(root, 'data');
  const reportDir = join(root, 'report');
  mkdirSync(reportDir);
  chmodSync(reportDir, 0o777);
  const folder = modelFolder(root);
  const gw = await spawnGateway({
    CONTROLLER_ENABLED: 'true',
    CONTROLLER_PORT_RANGE: portRange,
    DATA_DIR: dataDir,
    ...env,
  });
  try {
    const token = env.ADMIN_TOKEN === '' ? readFileSync(join(dataDir, 'admin-token'), 'utf8').trim() : TEST_ADMIN_TOKEN;
    const created = await adminCall(gw.adminUrl, token, 'POST', '/v1/services', {
      name: 'probe',
      model_folder: folder,
      replicas: 1,
      public: true,
      env: { REPORT: reportDir, DATA_UNDER_TEST: dataDir },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const report = await eventually(() => {
      const file = join(reportDir, 'report.txt');
      const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      if (!text.includes('--- end')) throw new Error(`no report yet:\n${gw.lines.slice(-5).join('\n')}`);
      return text;
    }, { timeoutMs: 20_000 });
    return { report, dataDir, gw, root };
  } catch (err) {
    await gw.stop();
    throw err;
  }
}

/**
 * The probe ran in the gateway's default work dir (`<tmpdir>/modelgate-replicas-<uid>/<id>/`, which
 * this suite checks on purpose): its replica folders are kept for a restart, so the test removes
 * `<id>`, found from the replica's own cwd (the gateway's tmpdir, not necessarily this process's).
 */
function removeProbe(run: { report: string; root: string }): void {
  rmSync(run.root, { recursive: true, force: true });
  const cwd = /cwd=(.*)/.exec(run.report)?.[1] ?? '';
  const at = cwd.indexOf(`${sep}modelgate-replicas-`);
  if (at < 0) return;
  const base = cwd.indexOf(sep, at + 1);
  const id = cwd.indexOf(sep, base + 1);
  if (base > 0 && id > base) rmSync(cwd.slice(0, id), { recursive: true, force: true });
}

function expectNoSecrets(report: string, secrets: string[]): void {
  for (const secret of secrets) expect(report.includes(secret), `report contains ${secret.slice(0, 12)}…:\n${report}`).toBe(false);
}

describe('security: replicas cannot read the gateway secrets (same user as the gateway)', () => {
  let run: Awaited<ReturnType<typeof runProbe>>;

  beforeAll(async () => {
    run = await runProbe({ REDIS_URL: '' }, '36100-36149');
  }, 40_000);
  afterAll(async () => {
    await run?.gw.stop();
    if (run) removeProbe(run);
  });

  it('the start-up environment of the gateway (the replica parent) holds no secret', () => {
    expect(run.report).toContain('--- parent environ');
    expectNoSecrets(run.report.split('--- ancestors')[0], [TEST_ADMIN_TOKEN, TEST_TOKEN_SECRET]);
  });

  it('no ancestor process started by the test holds them either', () => {
    expectNoSecrets(run.report.split('--- walk up')[0], [TEST_ADMIN_TOKEN, TEST_TOKEN_SECRET]);
  });

  it('the work dir is outside DATA_DIR and walking up from it reaches no store file', () => {
    const cwd = /cwd=(.*)/.exec(run.report)![1];
    const data = realpathSync(run.dataDir);
    expect(cwd.startsWith(data + '/'), `${cwd} is inside ${data}`).toBe(false);
    const walk = run.report.split('--- walk up')[1].split('--- data dir by absolute path')[0];
    for (const name of ['admin-token', 'token-secret', 'state.json', 'journal.ndjson']) {
      expect(walk.includes(`\n${name}\n`), `walk lists ${name}:\n${walk}`).toBe(false);
    }
    expect(walk).not.toContain('"endpoints"');
  });
});

const isRoot = process.getuid?.() === 0;
const RUN_AS_USER = 'mg-replica-test';

describe.runIf(isRoot)('security: replicas run as their own user (CONTROLLER_RUN_AS)', () => {
  let run: Awaited<ReturnType<typeof runProbe>>;
  let uid: number;

  beforeAll(async () => {
    try {
      execFileSync('id', ['-u', RUN_AS_USER], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', RUN_AS_USER]);
    }
    uid = Number(execFileSync('id', ['-u', RUN_AS_USER], { encoding: 'utf8' }).trim());
    // Secrets generated into DATA_DIR this time (no ADMIN_TOKEN/TOKEN_SECRET in the environment).
    run = await runProbe({ CONTROLLER_RUN_AS: RUN_AS_USER, ADMIN_TOKEN: '', TOKEN_SECRET: '' }, '36150-36199');
  }, 40_000);
  afterAll(async () => {
    await run?.gw.stop();
    if (run) removeProbe(run);
  });

  it('the replica and its pre-start commands run with the configured uid, without root groups', () => {
    expect(run.report).toContain(`uid=${uid} `);
    expect(run.report).toContain(`prestart_uid=${uid}\n`);
    // What the gateway wrote for the replica (write_file) belongs to the replica user.
    expect(run.report).toContain(`written_owner=${uid}\n`);
    const groups = /groups=(.*)/.exec(run.report)![1].split(' ');
    expect(groups).not.toContain('0');
  });

  it('cannot read any ancestor environment, nor DATA_DIR by absolute path', () => {
    const adminToken = readFileSync(join(run.dataDir, 'admin-token'), 'utf8').trim();
    const tokenSecret = readFileSync(join(run.dataDir, 'token-secret'), 'utf8').trim();
    expect(adminToken.length).toBeGreaterThan(15);
    expectNoSecrets(run.report, [adminToken, tokenSecret, TEST_ADMIN_TOKEN, TEST_TOKEN_SECRET]);
    const parent = run.report.split('--- parent environ')[1].split('--- ancestors')[0];
    expect(parent).toMatch(/Permission denied/);
    const data = run.report.split('--- data dir by absolute path')[1];
    expect(data).toMatch(/Permission denied/);
    expect(data).not.toContain('"endpoints"');
  });
});

if (!isRoot) {
  describe('security: CONTROLLER_RUN_AS', () => {
    it.skip('SKIPPED: creating a test user and switching replicas to it needs root (CI runs as root)', () => undefined);
  });
}
