import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { SimulatedKubernetesApi } from '../support/kube-sim.js';
import { eventually } from '../support/eventually.js';

function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 20_000): Promise<NonNullable<T>> {
  return eventually(probe, { what, timeoutMs, stepMs: 100 });
}

/**
 * The kubernetes runtime end to end against a SIMULATED Kubernetes API (test/support/kube-sim.ts):
 * a whole gateway reads KUBECONFIG, creates one Pod per replica through the real client
 * library, follows them with a watch and routes requests to Pod IP:port.
 */

let sim: SimulatedKubernetesApi;
let gw: TestGateway;
let dir: string;

beforeAll(async () => {
  sim = new SimulatedKubernetesApi();
  await sim.start();
  dir = mkdtempSync(join(tmpdir(), 'mg-k8s-'));
  writeFileSync(
    join(dir, 'kubeconfig.yaml'),
    `apiVersion: v1
kind: Config
clusters:
  - name: sim
    cluster: {server: "${sim.url}", insecure-skip-tls-verify: true}
users:
  - name: sim-user
    user: {token: simulated}
contexts:
  - name: sim
    context: {cluster: sim, user: sim-user}
current-context: sim
`,
  );
  // The model folder is mounted at the same path in the Pod (the simulation's host-path rule).
  writeFileSync(
    join(dir, 'model-definition.yaml'),
    `models:
  - name: pod-web
    model_path: "${dir}"
    service:
      pre_start_actions:
        - action: mkdir
          args: {path: "{home}/site"}
        - action: run_command
          ref: model_file
          args: {command: [cat, "{model_path}/greeting.txt"]}
        - action: write_file
          args: {filename: "{home}/site/index.html", body: "{model_file} from a pod\\n"}
      start_command: python3 -m http.server --bind "$POD_IP" --directory site 8000
      port: 8000
      health_check: {path: /, interval: 1, max_retries: 20}
`,
  );
  writeFileSync(join(dir, 'greeting.txt'), 'hello\n');
  gw = await startTestGateway({ CONTROLLER_ENABLED: 'true', KUBECONFIG: join(dir, 'kubeconfig.yaml'), KUBERNETES_NAMESPACE: 'models', HOLD_TIMEOUT_MS: '10000' });
});

afterAll(async () => {
  await gw?.stop();
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function healthy(name: string, count: number) {
  return waitFor(async () => {
    const res = await gw.admin('GET', `/v1/services/${name}`);
    const routes = res.body.routes as { status: string }[];
    return res.body.healthy_replicas === count && routes.length === count && routes.every((r) => r.status === 'healthy') ? res.body : null;
  }, `${name}: ${count} healthy`, 30_000);
}

describe('kubernetes runtime (simulated Kubernetes API)', { timeout: 90_000 }, () => {
  it('starts a Pod per replica with resources, shm, model volume and readiness probe; routes to Pod IP:port', async () => {
    const res = await gw.admin('POST', '/v1/services', {
      name: 'kweb',
      model_folder: dir,
      runtime: 'kubernetes',
      image: 'python:3.12-slim',
      model_volume: { host_path: dir },
      replicas: 2,
      public: true,
      env: { GREETING: 'hi' },
      resources: { cpu: 0.5, memory: '256m', gpu: 1, shared_memory: '1g' },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ runtime: 'kubernetes', image: 'python:3.12-slim', model_volume: { host_path: dir } });
    const view = await healthy('kweb', 2);
    const hosts = view.routes.map((r: { host: string }) => r.host);
    expect(new Set(hosts).size).toBe(2);
    for (const r of view.routes) expect(r).toMatchObject({ runtime: 'kubernetes', node: 'sim-node-1', host: expect.stringMatching(/^127\.0\.0\.\d+$/), port: 8000, pid: null });

    // The route table holds Pod IP:port, and the gateway really reaches the Pods there.
    const table = (await gw.admin('GET', '/v1/endpoints/kweb')).body;
    expect(table.routes.map((r: { url: string }) => r.url).sort()).toEqual(hosts.map((h: string) => `http://${h}:8000`).sort());
    const page = await fetch(`${gw.url}/e/kweb/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toBe('hello from a pod\n');

    const pods = sim.podsOf('kweb');
    expect(pods).toHaveLength(2);
    const c = pods[0].spec.containers[0];
    expect(c.image).toBe('python:3.12-slim');
    expect(c.resources).toEqual({ requests: { cpu: '0.5', memory: '256Mi' }, limits: { cpu: '0.5', memory: '256Mi', 'nvidia.com/gpu': '1' } });
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/', port: 8000 }, periodSeconds: 1, failureThreshold: 20 });
    expect(c.volumeMounts).toEqual(expect.arrayContaining([{ name: 'dshm', mountPath: '/dev/shm' }, { name: 'model', mountPath: dir }]));
    expect(pods[0].spec.volumes).toEqual(expect.arrayContaining([{ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '1024Mi' } }, { name: 'model', hostPath: { path: dir, type: 'Directory' } }]));
    expect(c.env).toEqual(expect.arrayContaining([{ name: 'GREETING', value: 'hi' }, { name: 'PORT', value: '8000' }]));
    expect(pods[0].spec.restartPolicy).toBe('Never');
    expect(pods[0].metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'modelgate', 'modelgate.io/service': 'kweb' });
    // Followed by a watch, not by polling.
    expect(sim.requests.some((r) => r.endsWith('(watch)'))).toBe(true);
  });

  it('a crashed container: the route leaves rotation, a new Pod replaces it (restarts + 1)', async () => {
    const before = await healthy('kweb', 2);
    const victim = sim.podsOf('kweb')[0];
    const victimIp = victim.status.podIP;
    sim.crash(victim.metadata.name, 'models');
    const crashed = before.routes.find((r: { host: string }) => r.host === victimIp);
    await waitFor(async () => {
      const v = (await gw.admin('GET', '/v1/services/kweb')).body;
      const route = v.routes.find((r: { id: string }) => r.id === crashed.id);
      return route && route.restarts === 1 && route.status === 'healthy' && route.host !== victimIp ? route : null;
    }, 'replica replaced', 40_000);
    const after = (await gw.admin('GET', '/v1/services/kweb')).body;
    const route = after.routes.find((r: { id: string }) => r.id === crashed.id);
    expect(route.last_error).toMatch(/exit/);
    expect(sim.podsOf('kweb')).toHaveLength(2);
    expect((await fetch(`${gw.url}/e/kweb/`)).status).toBe(200);
  });

  it('scales 2 → 3 → 1 in Pods', async () => {
    expect((await gw.admin('PATCH', '/v1/services/kweb', { replicas: 3 })).status).toBe(200);
    await healthy('kweb', 3);
    expect(sim.podsOf('kweb')).toHaveLength(3);
    expect((await gw.admin('PATCH', '/v1/services/kweb', { replicas: 1 })).status).toBe(200);
    await healthy('kweb', 1);
    await waitFor(() => (sim.podsOf('kweb').length === 1 ? true : null), 'one Pod left', 20_000);
  });

  it('an image that cannot be pulled: failed_to_start with the reason in last_error', async () => {
    const res = await gw.admin('POST', '/v1/services', { name: 'kbad', model_folder: dir, runtime: 'kubernetes', image: 'sim/unpullable', model_volume: { host_path: dir } });
    expect(res.status).toBe(201);
    const failed = await waitFor(async () => {
      const v = (await gw.admin('GET', '/v1/services/kbad')).body;
      return v.routes[0]?.status === 'failed_to_start' ? v.routes[0] : null;
    }, 'failed_to_start', 20_000);
    expect(failed.last_error).toMatch(/ErrImagePull/);
    expect((await gw.admin('DELETE', '/v1/services/kbad')).status).toBe(204);
  });

  it('rejects runtime "kubernetes" without an image (400 ADM_INVALID naming the field)', async () => {
    const res = await gw.admin('POST', '/v1/services', { name: 'knoimage', model_folder: dir, runtime: 'kubernetes' });
    expect(res.status).toBe(400);
    expect(res.body.error.code ?? res.body.code).toBe('ADM_INVALID');
    expect(JSON.stringify(res.body)).toContain('image');
  });

  it('terminates: every Pod deleted, endpoint gone', async () => {
    expect((await gw.admin('DELETE', '/v1/services/kweb')).status).toBe(204);
    await waitFor(() => (sim.podsOf('kweb').length === 0 ? true : null), 'Pods deleted', 20_000);
    expect((await gw.admin('GET', '/v1/endpoints/kweb')).status).toBe(404);
  });
});
