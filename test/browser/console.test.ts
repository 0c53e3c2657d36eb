import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, TEST_ADMIN_TOKEN, type SpawnedGateway } from '../support/gateway.js';
import { EXAMPLES, FIXTURES } from '../integration/controller-harness.js';
import { eventually } from '../support/eventually.js';

/**
 * The console in a real browser (Debian's chromium through playwright-core) against a real
 * gateway process with real replica processes. Elements are found by role and accessible
 * name, as DESIGN.md "Console (web UI)" lists them. With CONSOLE_SCREENSHOTS=<dir> the
 * screens are also saved there (docs/console/*.png come from this run).
 */

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ROOT = join(import.meta.dirname, '../..');
const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS;

let gw: SpawnedGateway;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let dataDir: string;
let workDir: string;
let modelsDir: string;
const upstreams: Server[] = [];

async function shot(name: string, target: Page = page): Promise<void> {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await target.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true, animations: 'disabled', caret: 'hide' });
}

async function startUpstream(text: string): Promise<string> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstreams.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The text of the element an input's aria-describedby points at (its error or hint). */
async function description(locator: ReturnType<Page['getByLabel']>): Promise<string> {
  return locator.evaluate((el) =>
    (el.getAttribute('aria-describedby') ?? '')
      .split(' ')
      .filter(Boolean)
      .map((id: string) => (globalThis as any).document.getElementById(id)?.textContent ?? '')
      .join(' '),
  );
}

function serviceRow(name: string) {
  return page.getByRole('table', { name: 'Services' }).getByRole('row').filter({ has: page.getByRole('rowheader', { name: new RegExp(`^${name}\\b`) }) });
}

async function callEndpoint(name: string, token?: string): Promise<number> {
  const res = await fetch(`${gw.url}/e/${name}/`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  await res.arrayBuffer();
  return res.status;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); .ci/run does`);
  // The console the gateway serves is the one built from this checkout.
  execFileSync(process.execPath, [join(ROOT, 'console/build.mjs')], { stdio: 'inherit' });
  dataDir = mkdtempSync(join(tmpdir(), 'mg-console-data-'));
  workDir = mkdtempSync(join(tmpdir(), 'mg-console-work-'));
  modelsDir = mkdtempSync(join(tmpdir(), 'mg-console-models-'));
  gw = await spawnGateway({
    DATA_DIR: dataDir,
    CONTROLLER_ENABLED: 'true',
    CONTROLLER_PORT_RANGE: '26000-26999',
    CONTROLLER_WORK_DIR: workDir,
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  context = await browser.newContext({ viewport: { width: 1360, height: 860 }, deviceScaleFactor: 1 });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gw.adminUrl });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (gw) {
    // Services first, so no replica outlives the test.
    const list = await gw.admin('GET', '/v1/services').catch(() => null);
    for (const s of list?.body?.services ?? []) await gw.admin('DELETE', `/v1/services/${s.name}`).catch(() => null);
    await gw.stop();
  }
  for (const s of upstreams) s.close();
  for (const dir of [dataDir, workDir, modelsDir]) if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

afterEach(async (ctx) => {
  // On a failure, what the gateway itself says helps tell a console bug from a slow replica.
  if (ctx.task.result?.state !== 'fail' || !gw) return;
  const services = await gw.admin('GET', '/v1/services').catch((err) => ({ body: String(err) }));
  console.error('services at failure:', JSON.stringify(services.body, null, 1).slice(0, 4000));
  console.error('gateway log tail:', gw.lines.slice(-30).join('\n'));
});

describe('console in a real browser', () => {
  it('is served at /ui/ with a strict CSP and no third-party resources', async () => {
    const res = await fetch(`${gw.adminUrl}/ui/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/); // no inline script
    expect(html).not.toMatch(/https?:\/\//); // nothing from elsewhere
    expect((await fetch(`${gw.adminUrl}/ui/app.js`)).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${gw.adminUrl}/ui/nope.js`)).status).toBe(404);
  });

  it('signs in with the admin token kept in sessionStorage only', async () => {
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const violations: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    await page.goto(`${gw.adminUrl}/ui/`);
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('This admin token is not accepted.').waitFor();
    await shot('sign-in');

    await page.getByLabel('Admin token').fill(TEST_ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Model Serving' }).waitFor();
    expect(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('modelgate.admin-token'))).toBe(TEST_ADMIN_TOKEN);
    expect(await page.evaluate(() => (globalThis as any).localStorage.length)).toBe(0);
    expect(await context.cookies()).toEqual([]);
    expect(page.url()).not.toContain(TEST_ADMIN_TOKEN);
    for (const url of requests) {
      expect(url).not.toContain(TEST_ADMIN_TOKEN);
      expect(new URL(url).origin).toBe(gw.adminUrl);
    }
    expect(violations).toEqual([]);
  });

  it('validates a good folder and a broken one, with the log live', async () => {
    await page.getByRole('button', { name: 'Start Service' }).click();
    const form = page.getByRole('dialog', { name: 'Start Service' });
    expect(await form.getByLabel('Model Destination For Model Folder').inputValue()).toBe('/models');
    expect(await form.getByLabel('Model Definition File Path').inputValue()).toBe('model-definition.yaml');
    await form.getByLabel('Model Storage To Mount').fill(join(EXAMPLES, 'simple-http-server'));
    await form.getByRole('button', { name: 'Validate' }).click();
    const dialog = page.getByRole('dialog', { name: 'Validation' });
    const log = dialog.getByRole('log', { name: 'Container log' });
    await dialog.getByRole('status').getByText('Healthy').waitFor({ timeout: 30_000 });
    expect(await log.textContent()).toMatch(/\[pre-start\] write_file .*[\s\S]*healthy on port/);
    expect(await dialog.getByRole('status').textContent()).toContain('Finished');
    await shot('validate');
    await dialog.getByRole('button', { name: 'Close' }).click();

    await form.getByLabel('Model Storage To Mount').fill(join(FIXTURES, 'exits-at-once'));
    await form.getByRole('button', { name: 'Validate' }).click();
    await dialog.getByRole('status').getByText('Failed').waitFor({ timeout: 30_000 });
    expect(await log.textContent()).toContain('fatal: cannot load model');
    await dialog.getByRole('button', { name: 'Close' }).click();

    // A definition the server rejects: the reason is shown with the result.
    await form.getByLabel('Model Storage To Mount').fill(join(FIXTURES, 'unknown-action'));
    await form.getByRole('button', { name: 'Validate' }).click();
    await dialog.getByRole('status').getByText('Failed').waitFor();
    expect(await dialog.getByRole('alert').first().textContent()).toMatch(/action/);
    await dialog.getByRole('button', { name: 'Close' }).click();
    await form.getByRole('button', { name: 'Cancel' }).click();
  }, 120_000);

  it('shows bad input next to the field and creates nothing', async () => {
    await page.getByRole('button', { name: 'Start Service' }).click();
    const form = page.getByRole('dialog', { name: 'Start Service' });
    await form.getByLabel('Service name').fill('Bad_Name');
    await form.getByLabel('Model Storage To Mount').fill(join(EXAMPLES, 'simple-http-server'));
    await form.getByLabel('Desired Routing Count').fill('0');
    await form.getByRole('button', { name: 'Create' }).click();
    await form.locator('.field-error').first().waitFor();
    expect(await description(form.getByLabel('Service name'))).toMatch(/DNS label/);
    expect(await description(form.getByLabel('Desired Routing Count'))).toMatch(/>=\s*1|at least|too small/i);
    expect(await form.getByLabel('Service name').getAttribute('aria-invalid')).toBe('true');
    await shot('start-service-errors');
    expect((await gw.admin('GET', '/v1/services')).body.services).toEqual([]);
    await form.getByRole('button', { name: 'Cancel' }).click();
  });

  it('sends the autoscaling settings, and shows the answer whatever this server makes of them', async () => {
    await page.getByRole('button', { name: 'Start Service' }).click();
    const form = page.getByRole('dialog', { name: 'Start Service' });
    await form.getByLabel('Service name').fill('scaled');
    await form.getByLabel('Model Storage To Mount').fill(join(EXAMPLES, 'simple-http-server'));
    await form.getByLabel('Autoscaling', { exact: true }).check();
    await form.getByLabel('Minimum replicas').fill('0');
    await form.getByLabel('Maximum replicas').fill('3');
    await form.getByLabel('Target in-flight requests per replica').fill('5');
    await form.getByLabel('Scale-to-zero grace (s)').fill('45');
    const [request] = await Promise.all([page.waitForRequest((r) => r.url().endsWith('/v1/services') && r.method() === 'POST'), form.getByRole('button', { name: 'Create' }).click()]);
    const body = request.postDataJSON();
    expect(body.autoscaling).toEqual({ min_replicas: 0, max_replicas: 3, target_in_flight: 5, scale_to_zero_grace_s: 45 });
    expect(body).not.toHaveProperty('replicas'); // the controller owns the count
    const response = await request.response();
    if (response!.status() === 201) {
      // A server with autoscaling (DESIGN.md "Autoscaling and scale to zero").
      await form.waitFor({ state: 'detached' });
      await serviceRow('scaled').waitFor();
      // Its page shows the controller's count as the API reports it (no traffic: it stays put).
      await page.getByRole('link', { name: 'scaled' }).click();
      const status = page.getByRole('status', { name: 'Autoscaling status' });
      await status.waitFor();
      const s = (await gw.admin('GET', '/v1/services/scaled')).body.autoscaling.status;
      await eventually(async () => ((await status.textContent()) ?? '').includes(`desired ${s.desired}, current ${s.current}`), { what: 'the autoscaling status', timeoutMs: 10_000, stepMs: 100 });
      expect(await status.textContent()).toMatch(/^Autoscaling: /);
      await page.getByRole('link', { name: '‹ Back to the list' }).click();
      expect((await gw.admin('DELETE', '/v1/services/scaled')).status).toBe(204);
    } else {
      // A server without it refuses the unknown field: said in the dialog, nothing created.
      expect(response!.status()).toBe(400);
      await form.getByRole('alert').filter({ hasText: 'autoscaling' }).waitFor();
      expect((await gw.admin('GET', '/v1/services/scaled')).status).toBe(404);
      await form.getByRole('button', { name: 'Cancel' }).click();
    }
  }, 60_000);

  it('starts a service and shows it HEALTHY with its replicas and URL', async () => {
    await page.getByRole('button', { name: 'Start Service' }).click();
    const form = page.getByRole('dialog', { name: 'Start Service' });
    await form.getByLabel('Service name').fill('web');
    await form.getByLabel('Model Storage To Mount').fill(join(EXAMPLES, 'simple-http-server'));
    await form.getByLabel('Desired Routing Count').fill('2');
    await form.getByLabel('Environment variables').fill('GREETING=hello');
    await shot('start-service');
    await form.getByRole('button', { name: 'Create' }).click();
    await form.waitFor({ state: 'detached' });
    const row = serviceRow('web');
    await row.getByText('HEALTHY', { exact: true }).waitFor({ timeout: 60_000 });
    await row.getByText('2 / 2').waitFor();
    expect(await row.textContent()).toContain(`web.localhost:${gw.port}`);
    const view = (await gw.admin('GET', '/v1/services/web')).body;
    expect(view).toMatchObject({ replicas: 2, public: false, env: { GREETING: 'hello' } });
    await shot('services');
  }, 90_000);

  let token = '';
  it('routing page: routes, a token shown once with Copy, the endpoint called with it', async () => {
    await page.getByRole('link', { name: 'web' }).click();
    await page.getByRole('heading', { name: /web/ }).first().waitFor();
    const routes = page.getByRole('table', { name: 'Routes' });
    await eventually(async () => (await routes.getByRole('row').filter({ hasText: 'healthy' }).count()) === 2, { what: 'two healthy routes', timeoutMs: 20_000, stepMs: 100 });
    const first = routes.getByRole('row').nth(1);
    expect(await first.textContent()).toMatch(/http:\/\/127\.0\.0\.1:26\d{3}/);
    expect(await page.getByRole('columnheader', { name: 'Last error' }).count()).toBe(1);
    expect(await page.getByRole('columnheader', { name: 'Restarts' }).count()).toBe(1);
    // Where each replica runs, as GET /v1/services/web reports it (issue 17).
    const view = (await gw.admin('GET', '/v1/services/web')).body;
    expect(view.runtime).toBe('process');
    expect(await page.getByRole('columnheader', { name: 'Runtime' }).count()).toBe(1);
    expect(await page.getByRole('columnheader', { name: 'Node / host' }).count()).toBe(1);
    for (const r of view.routes) {
      const row = routes.getByRole('row').filter({ hasText: r.id });
      const cells = row.getByRole('cell');
      expect(await cells.nth(2).textContent()).toBe(r.runtime);
      expect(r.node ?? r.host).toBeTruthy();
      const nodeHost = (await cells.nth(3).textContent()) ?? '';
      for (const part of [r.node, r.host].filter(Boolean)) expect(nodeHost).toContain(part);
    }
    expect(await page.locator('dl.facts').textContent()).toContain('Runtimeprocess');
    // Recent events, newest first, as the API lists them (the replicas' health changes at least).
    const newest = async () => (await gw.admin('GET', '/v1/services/web/events?limit=10')).body.events as { message: string }[];
    expect((await newest()).length).toBeGreaterThan(0);
    const eventItems = page.getByRole('list', { name: 'Recent events' }).getByRole('listitem');
    await eventually(async () => ((await eventItems.first().textContent()) ?? '').includes((await newest())[0].message), { what: 'the newest event first', timeoutMs: 10_000, stepMs: 200 });
    expect(await eventItems.count()).toBeLessThanOrEqual(10);

    expect(await callEndpoint('web')).toBe(401);
    await page.getByRole('button', { name: 'Generate token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Generate token' });
    await dialog.getByLabel('Expiration date').fill('2020-01-01');
    await dialog.getByRole('button', { name: 'Generate' }).click();
    expect(await description(dialog.getByLabel('Expiration date'))).toContain('future');
    const inTwoDays = new Date(Date.now() + 2 * 86400_000);
    const local = new Date(inTwoDays.getTime() - inTwoDays.getTimezoneOffset() * 60_000).toISOString();
    await dialog.getByLabel('Expiration date').fill(local.slice(0, 10));
    await dialog.getByLabel('Expiration time').fill('12:30');
    await dialog.getByRole('button', { name: 'Generate' }).click();
    const shown = page.getByRole('dialog', { name: 'Token generated' });
    token = await shown.getByLabel('Token').inputValue();
    expect(token.length).toBeGreaterThan(40);
    await shown.getByRole('button', { name: 'Copy' }).click();
    await shown.getByText('Copied to the clipboard.').waitFor();
    expect(await page.evaluate(() => (globalThis as any).navigator.clipboard.readText())).toBe(token);
    const issued = (await gw.admin('GET', '/v1/endpoints/web/tokens')).body.tokens[0];
    expect(new Date(issued.expires_at).getTime()).toBe(new Date(`${local.slice(0, 10)}T12:30`).getTime());
    await shot('token-generated');
    await shown.getByRole('button', { name: 'Done' }).click();
    // Shown once: nowhere on the page afterwards.
    expect(await page.content()).not.toContain(token);
    const tokens = page.getByRole('table', { name: 'Tokens' });
    await tokens.getByText('valid').waitFor();

    expect(await callEndpoint('web', token)).toBe(200);
  }, 60_000);

  it('charts move under load', async () => {
    const rps = page.getByRole('figure', { name: 'Requests/s' });
    let stop = Date.now() + 30_000;
    let sent = 0;
    const load = (async () => {
      const worker = async () => {
        while (Date.now() < stop) {
          await callEndpoint('web', token);
          sent++;
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    })();
    try {
      await eventually(async () => {
        const text = (await rps.locator('output').textContent()) ?? '';
        return Number.parseFloat(text) > 0;
      }, { what: 'requests/s above 0', timeoutMs: 15_000, stepMs: 100 });
      const latency = page.getByRole('figure', { name: 'Latency p50 / p99' });
      await eventually(async () => /p50 \d/.test((await latency.locator('output').textContent()) ?? ''), { what: 'a p50 latency', timeoutMs: 10_000, stepMs: 100 });
      const inFlight = page.getByRole('figure', { name: 'In flight per replica' });
      // One series per replica (route id) of the endpoint.
      await eventually(async () => (await inFlight.getByRole('listitem').count()) === 2, { what: 'in-flight series per replica', timeoutMs: 10_000, stepMs: 100 });
      // The line itself moves: a new point every second.
      const segments = async () => ((await rps.locator('svg path').first().getAttribute('d')) ?? '').split('L').length;
      await eventually(async () => (await segments()) >= 8, { what: 'eight points on the requests/s line', timeoutMs: 20_000, stepMs: 100 });
      await shot('service');
    } finally {
      stop = 0;
      await load;
    }
    expect(sent).toBeGreaterThan(10);
    const stats = await gw.admin('GET', '/v1/endpoints/web/stats');
    expect(stats.body.requests['2xx']).toBeGreaterThanOrEqual(sent);
    expect(stats.body.routes).toHaveLength(2);
  }, 60_000);

  it('revokes the token', async () => {
    const tokens = page.getByRole('table', { name: 'Tokens' });
    await tokens.getByRole('button', { name: 'Revoke' }).click();
    await tokens.getByText('revoked').waitFor();
    await eventually(async () => (await callEndpoint('web', token)) === 401, { what: 'the revoked token refused', timeoutMs: 5_000, stepMs: 100 });
  });

  it('modifies the service: fewer replicas, open to public', async () => {
    await page.getByRole('button', { name: 'Modify' }).click();
    const form = page.getByRole('dialog', { name: 'Modify web' });
    expect(await form.getByLabel('Desired Routing Count').inputValue()).toBe('2');
    expect(await form.getByLabel('Environment variables').inputValue()).toBe('GREETING=hello');
    expect(await form.getByLabel('Service name').isDisabled()).toBe(true);
    await form.getByLabel('Desired Routing Count').fill('1');
    await form.getByLabel('Open To Public').check();
    await shot('modify-service');
    await form.getByRole('button', { name: 'Save' }).click();
    await form.waitFor({ state: 'detached' });
    await eventually(async () => (await page.getByRole('table', { name: 'Routes' }).getByRole('row').count()) === 2, { what: 'one route left (plus the header)', timeoutMs: 30_000, stepMs: 100 });
    await page.getByText('Open to public (no token needed)').waitFor();
    await eventually(async () => (await callEndpoint('web')) === 200, { what: 'public endpoint answers without a token', timeoutMs: 10_000, stepMs: 100 });
  }, 60_000);

  it('clear error and retry brings back a service whose replicas failed', async () => {
    // A folder whose start command fails until a file exists: the seed guide's broken service.
    const folder = join(modelsDir, 'flaky');
    cpSync(join(EXAMPLES, 'simple-http-server'), folder, { recursive: true });
    writeFileSync(
      join(folder, 'model-definition.yaml'),
      [
        'models:',
        '  - name: flaky',
        '    model_path: /models',
        '    service:',
        '      start_command: "test -f /models/ready || { echo \'weights not found\' >&2; exit 3; }; exec python3 -m http.server --bind 127.0.0.1 8000"',
        '      port: 8000',
        '      health_check:',
        '        path: /',
        '        interval: 0.5',
        '        max_retries: 2',
        '        initial_delay: 10',
        '',
      ].join('\n'),
    );
    await page.getByRole('link', { name: 'Model Serving' }).click();
    await page.getByRole('button', { name: 'Start Service' }).click();
    const form = page.getByRole('dialog', { name: 'Start Service' });
    await form.getByLabel('Service name').fill('flaky');
    await form.getByLabel('Model Storage To Mount').fill(folder);
    await form.getByRole('button', { name: 'Create' }).click();
    await form.waitFor({ state: 'detached' });
    const row = serviceRow('flaky');
    await row.getByText('UNHEALTHY', { exact: true }).waitFor({ timeout: 60_000 });

    await page.getByRole('link', { name: 'flaky' }).click();
    const routes = page.getByRole('table', { name: 'Routes' });
    await routes.getByText(/exited with code 3/).first().waitFor({ timeout: 30_000 });
    await shot('service-failed');

    writeFileSync(join(folder, 'ready'), 'yes');
    const cleared = page.waitForResponse((r) => r.url().endsWith('/v1/services/flaky/errors/clear') && r.status() === 200);
    await page.getByRole('button', { name: 'Clear error and Retry' }).click();
    await cleared;
    await page.getByRole('heading', { name: /flaky/ }).getByText('HEALTHY', { exact: true }).waitFor({ timeout: 60_000 });
  }, 150_000);

  it('terminates a service after a confirmation', async () => {
    await page.getByRole('link', { name: 'Model Serving' }).click();
    const row = serviceRow('flaky');
    await row.getByRole('button', { name: 'Terminate' }).click();
    const confirm = page.getByRole('dialog', { name: 'Terminate service' });
    await shot('terminate-confirm');
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    expect((await gw.admin('GET', '/v1/services/flaky')).status).toBe(200);
    await row.getByRole('button', { name: 'Terminate' }).click();
    await confirm.getByRole('button', { name: 'OK' }).click();
    await row.waitFor({ state: 'detached', timeout: 30_000 });
    expect((await gw.admin('GET', '/v1/services/flaky')).status).toBe(404);
  }, 60_000);

  it('lists pushed endpoints and edits their weights and public/private', async () => {
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    expect((await gw.admin('PUT', '/v1/endpoints/pushed', { routes: [{ id: 'ra', url: a }, { id: 'rb', url: b, weight: 1 }] })).status).toBe(201);
    await page.getByRole('link', { name: 'Endpoints' }).click();
    const table = page.getByRole('table', { name: 'Endpoints' });
    const pushedRow = table.getByRole('row').filter({ hasText: 'pushed' });
    await pushedRow.getByText('route table').waitFor();
    expect(await table.getByRole('row').filter({ hasText: 'web' }).textContent()).toContain('model service');
    await shot('endpoints');

    await pushedRow.getByRole('link', { name: 'pushed' }).click();
    await page.getByLabel('Weight of route rb').fill('-1');
    await page.getByRole('button', { name: 'Save routes' }).click();
    // The admin API's ADM_INVALID detail for routes.1.weight, shown next to that weight.
    await page.getByRole('row').filter({ hasText: 'rb' }).getByRole('alert').filter({ hasText: />=\s*0/ }).waitFor();
    expect((await gw.admin('GET', '/v1/endpoints/pushed')).body.version).toBe(1);
    await page.getByLabel('Weight of route rb').fill('3');
    await page.getByRole('button', { name: 'Save routes' }).click();
    await page.getByText(/Saved as version 2/).waitFor();
    let table2 = (await gw.admin('GET', '/v1/endpoints/pushed')).body;
    expect(table2.routes.find((r: { id: string }) => r.id === 'rb').weight).toBe(3);

    await page.getByLabel('Public (callers need no token)').check();
    await page.getByText('The endpoint is open to public.').waitFor();
    table2 = (await gw.admin('GET', '/v1/endpoints/pushed')).body;
    expect(table2.public).toBe(true);
    expect(await callEndpoint('pushed')).toBe(200);
    // The form shows the table as saved, not the drafts it was edited from.
    expect(await page.getByLabel('Weight of route rb').inputValue()).toBe('3');
    expect(await page.getByRole('button', { name: 'Save routes' }).isDisabled()).toBe(true);
    await shot('endpoint');
  }, 60_000);

  it('goes back to sign-in when the token is no longer accepted, and signs out', async () => {
    await page.evaluate(() => (globalThis as any).sessionStorage.setItem('modelgate.admin-token', 'stale-token-value'));
    await page.reload();
    await page.getByRole('status').filter({ hasText: 'no longer accepted' }).waitFor();
    expect(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('modelgate.admin-token'))).toBeNull();
    await page.getByLabel('Admin token').fill(TEST_ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin token').waitFor();
    expect(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('modelgate.admin-token'))).toBeNull();
  });
});
