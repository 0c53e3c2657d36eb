import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

/**
 * A SIMULATED Kubernetes API server (the one simulation the project allows: these machines have
 * no cluster and cannot run containers). It speaks the real REST and watch protocol for Pods —
 * create/get/list/delete under /api/v1/namespaces/{ns}/pods, labelSelector, resourceVersion,
 * `?watch=true` streaming one JSON event per line — so the real @kubernetes/client-node talks
 * to it unchanged.
 *
 * Its "kubelet" runs each Pod's container command as a local process group, bound to a
 * distinct loopback IP (127.0.0.N; all of 127/8 is loopback on Linux) reported as the podIP,
 * so the gateway really routes to Pod IP:port. Simplifications, on purpose: images are not
 * pulled (image "sim/unpullable" reports ErrImagePull), HOME is a per-Pod temp directory,
 * volume mounts must be identity host paths (hostPath.path == mountPath; /dev/shm is the
 * host's), and readiness probes run every periodSeconds against podIP.
 */

type Pod = {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; labels?: Record<string, string>; creationTimestamp: string; deletionTimestamp?: string; [k: string]: unknown };
  spec: any;
  status: any;
};

interface Watcher {
  ns: string;
  selector: Record<string, string>;
  res: ServerResponse;
}

interface Running {
  child: ChildProcess;
  home: string;
  probeTimer?: NodeJS.Timeout;
  exited: Promise<void>;
}

function parseSelector(text: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split(',')) {
    const [k, v] = part.split('=');
    if (k) out[k.trim()] = (v ?? '').trim();
  }
  return out;
}

function matches(pod: Pod, ns: string, selector: Record<string, string>): boolean {
  if (pod.metadata.namespace !== ns) return false;
  return Object.entries(selector).every(([k, v]) => pod.metadata.labels?.[k] === v);
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
}

export class SimulatedKubernetesApi {
  readonly pods = new Map<string, Pod>();
  readonly #running = new Map<string, Running>();
  readonly #watchers = new Set<Watcher>();
  readonly #history: { rv: number; type: string; pod: Pod }[] = [];
  #rv = 100;
  #nextIp = 2;
  #server: Server | undefined;
  url = '';
  /** Every request's method and path, for assertions. */
  readonly requests: string[] = [];

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      void this.#handle(req, res).catch((err: Error) => status(res, 500, 'InternalError', err.message));
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    const addr = this.#server.address() as { port: number };
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'sim', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'sim-user', token: 'simulated' }],
      contexts: [{ name: 'sim', cluster: 'sim', user: 'sim-user', namespace: 'models' }],
      currentContext: 'sim',
    });
    return kc;
  }

  async stop(): Promise<void> {
    for (const w of this.#watchers) w.res.end();
    this.#watchers.clear();
    for (const [key, run] of this.#running) {
      clearInterval(run.probeTimer);
      try {
        process.kill(-run.child.pid!, 'SIGKILL');
      } catch {}
      rmSync(run.home, { recursive: true, force: true });
      this.#running.delete(key);
    }
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }

  /** Kills a Pod's container process, as a crash inside the container would. */
  crash(name: string, ns = 'models'): number | undefined {
    const run = this.#running.get(`${ns}/${name}`);
    if (!run) return undefined;
    process.kill(-run.child.pid!, 'SIGKILL');
    return run.child.pid;
  }

  podsOf(service: string): Pod[] {
    return [...this.pods.values()].filter((p) => p.metadata.labels?.['modelgate.io/service'] === service && !p.metadata.deletionTimestamp);
  }

  #emit(type: 'ADDED' | 'MODIFIED' | 'DELETED', pod: Pod): void {
    const rv = ++this.#rv;
    pod.metadata.resourceVersion = String(rv);
    const snapshot = structuredClone(pod);
    this.#history.push({ rv, type, pod: snapshot });
    for (const w of this.#watchers) if (matches(snapshot, w.ns, w.selector)) w.res.write(`${JSON.stringify({ type, object: snapshot })}\n`);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push(`${req.method} ${url.pathname}${url.searchParams.get('watch') ? ' (watch)' : ''}`);
    const m = /^\/api\/v1\/namespaces\/([a-z0-9-]+)\/pods(?:\/([a-z0-9.-]+))?$/.exec(url.pathname);
    if (!m) return status(res, 404, 'NotFound', `the simulated API serves only pods, not ${url.pathname}`);
    const [, ns, name] = m;
    if (!name && req.method === 'GET') {
      const selector = parseSelector(url.searchParams.get('labelSelector'));
      if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') return this.#watch(ns, selector, url.searchParams.get('resourceVersion'), res);
      const items = [...this.pods.values()].filter((p) => matches(p, ns, selector));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.#rv) }, items }));
      return;
    }
    if (!name && req.method === 'POST') return this.#create(ns, await readJson(req), res);
    if (!name) return status(res, 405, 'MethodNotAllowed', `${req.method} not allowed`);
    const pod = this.pods.get(`${ns}/${name}`);
    if (!pod) return status(res, 404, 'NotFound', `pods "${name}" not found`);
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(pod));
      return;
    }
    if (req.method === 'DELETE') {
      const grace = Number(url.searchParams.get('gracePeriodSeconds') ?? pod.spec.terminationGracePeriodSeconds ?? 30);
      this.#delete(pod, Number.isFinite(grace) ? grace : 30);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(pod));
      return;
    }
    status(res, 405, 'MethodNotAllowed', `${req.method} not allowed`);
  }

  #watch(ns: string, selector: Record<string, string>, from: string | null, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const since = from ? Number(from) : this.#rv;
    if (from && this.#history.length > 0 && since < this.#history[0].rv - 1) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } })}\n`);
      return;
    }
    for (const e of this.#history) if (e.rv > since && matches(e.pod, ns, selector)) res.write(`${JSON.stringify({ type: e.type, object: e.pod })}\n`);
    const watcher = { ns, selector, res };
    this.#watchers.add(watcher);
    res.on('close', () => this.#watchers.delete(watcher));
  }

  #create(ns: string, body: any, res: ServerResponse): void {
    const name = body?.metadata?.name;
    if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) return status(res, 422, 'Invalid', `Pod "${name}" is invalid: metadata.name`);
    if (this.pods.has(`${ns}/${name}`)) return status(res, 409, 'AlreadyExists', `pods "${name}" already exists`);
    const containers = body?.spec?.containers;
    if (!Array.isArray(containers) || containers.length === 0 || !containers[0].image) return status(res, 422, 'Invalid', `Pod "${name}" is invalid: spec.containers`);
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...body.metadata, namespace: ns, uid: crypto.randomUUID(), resourceVersion: '0', creationTimestamp: new Date().toISOString() },
      spec: body.spec,
      status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Pending' }] },
    };
    this.pods.set(`${ns}/${name}`, pod);
    this.#emit('ADDED', pod);
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify(pod));
    setTimeout(() => this.#kubelet(pod), 20);
  }

  /** Schedules the Pod on the one simulated node and runs its container as a process. */
  #kubelet(pod: Pod): void {
    if (pod.metadata.deletionTimestamp || !this.pods.has(`${pod.metadata.namespace}/${pod.metadata.name}`)) return;
    const c = pod.spec.containers[0];
    pod.spec.nodeName = 'sim-node-1';
    const podIP = `127.0.0.${this.#nextIp++}`;
    pod.status = { phase: 'Pending', hostIP: '127.0.0.1', podIP, podIPs: [{ ip: podIP }], conditions: [{ type: 'PodScheduled', status: 'True' }], containerStatuses: [{ name: c.name, image: c.image, ready: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } }] };
    if (c.image === 'sim/unpullable') {
      pod.status.containerStatuses[0].state = { waiting: { reason: 'ErrImagePull', message: `failed to pull image "${c.image}": not found` } };
      this.#emit('MODIFIED', pod);
      return;
    }
    for (const mount of c.volumeMounts ?? []) {
      const volume = (pod.spec.volumes ?? []).find((v: any) => v.name === mount.name);
      const ok = mount.mountPath === '/dev/shm' ? volume?.emptyDir?.medium === 'Memory' : volume?.hostPath?.path === mount.mountPath;
      if (!ok) {
        pod.status.containerStatuses[0].state = { waiting: { reason: 'CreateContainerConfigError', message: `simulated kubelet: volume ${mount.name} must be a host path mounted at the same path` } };
        this.#emit('MODIFIED', pod);
        return;
      }
    }
    const home = mkdtempSync(join(tmpdir(), 'kube-sim-home-'));
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    for (const e of c.env ?? []) env[e.name] = e.valueFrom?.fieldRef?.fieldPath === 'status.podIP' ? podIP : String(e.value ?? '');
    env.HOME = home;
    const argv: string[] = [...(c.command ?? []), ...(c.args ?? [])];
    const child = spawn(argv[0], argv.slice(1), { env, cwd: home, detached: true, stdio: 'ignore' });
    child.on('error', () => undefined);
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        const run = this.#running.get(`${pod.metadata.namespace}/${pod.metadata.name}`);
        clearInterval(run?.probeTimer);
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {}
        const exitCode = code ?? (signal === 'SIGKILL' ? 137 : 143);
        pod.status.phase = exitCode === 0 ? 'Succeeded' : 'Failed';
        pod.status.containerStatuses[0] = { ...pod.status.containerStatuses[0], ready: false, state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', finishedAt: new Date().toISOString() } } };
        pod.status.conditions = [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'False' }];
        if (this.pods.has(`${pod.metadata.namespace}/${pod.metadata.name}`)) this.#emit('MODIFIED', pod);
        resolve();
      });
    });
    const run: Running = { child, home, exited };
    this.#running.set(`${pod.metadata.namespace}/${pod.metadata.name}`, run);
    pod.status.phase = 'Running';
    pod.status.containerStatuses[0].state = { running: { startedAt: new Date().toISOString() } };
    pod.status.conditions = [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'False' }];
    this.#emit('MODIFIED', pod);
    const probe = c.readinessProbe;
    if (probe) {
      run.probeTimer = setInterval(() => void this.#probe(pod, podIP, probe), Math.max(1, probe.periodSeconds ?? 10) * 1000);
      run.probeTimer.unref();
    }
  }

  async #probe(pod: Pod, podIP: string, probe: any): Promise<void> {
    const port = Number(probe.httpGet?.port ?? probe.tcpSocket?.port);
    const ok = await new Promise<boolean>((resolve) => {
      const req = httpRequest({ host: podIP, port, path: probe.httpGet?.path ?? '/', timeout: 1000 }, (r) => {
        r.resume();
        resolve(r.statusCode! >= 200 && r.statusCode! < 400);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    const cs = pod.status.containerStatuses?.[0];
    if (!cs || !cs.state?.running || cs.ready === ok) return;
    cs.ready = ok;
    pod.status.conditions = [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: ok ? 'True' : 'False' }];
    this.#emit('MODIFIED', pod);
  }

  #delete(pod: Pod, graceSeconds: number): void {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    if (pod.metadata.deletionTimestamp) return;
    pod.metadata.deletionTimestamp = new Date().toISOString();
    this.#emit('MODIFIED', pod);
    const run = this.#running.get(key);
    const gone = () => {
      this.pods.delete(key);
      this.#emit('DELETED', pod);
      if (run) rmSync(run.home, { recursive: true, force: true });
      this.#running.delete(key);
    };
    if (!run || run.child.exitCode !== null || run.child.signalCode !== null) return gone();
    try {
      process.kill(-run.child.pid!, 'SIGTERM');
    } catch {}
    const timer = setTimeout(() => {
      try {
        process.kill(-run.child.pid!, 'SIGKILL');
      } catch {}
    }, graceSeconds * 1000);
    void run.exited.then(() => {
      clearTimeout(timer);
      gone();
    });
  }
}

async function readJson(req: IncomingMessage): Promise<any> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return null;
  }
}
