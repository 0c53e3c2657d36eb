import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, KubeConfig, Watch, V1Container, V1Pod, V1Probe, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { Logger } from '../obs/logger.js';
import { HEALTH_CHECK_DEFAULTS } from './model-definition.js';
import { podScript } from './pod-script.js';
import { ReplicaStartError, type ExitInfo, type ReplicaHandle, type ReplicaRef, type ReplicaRuntime, type ReplicaSpec } from './runtime.js';

/**
 * Replicas as Kubernetes Pods, one Pod per replica (docs/decisions.md says why not a
 * Deployment): the controller already does what a ReplicaSet would (count, restarts with
 * backoff, rolling new-before-old, route statuses), and it needs each replica's own address and
 * fate. Pods are labelled with the service and replica id, so a new leader on any machine finds
 * them again (adoption). One watch per runtime follows every modelgate Pod of the namespace;
 * routes are Pod IP:port.
 */

const MANAGED_BY = 'app.kubernetes.io/managed-by';
const SERVICE_LABEL = 'modelgate.io/service';
const REPLICA_LABEL = 'modelgate.io/replica';
const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const SA_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
/** Waiting reasons that will not fix themselves: the start failed. */
const FATAL_WAITING = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'CrashLoopBackOff', 'RunContainerError']);
const HOME = '/home/work';

export interface KubernetesRuntimeOptions {
  /** KUBERNETES_NAMESPACE; default: the service account's namespace in a cluster, else "default". */
  namespace?: string;
  /** KUBECONFIG; unset = in-cluster configuration. */
  kubeconfig?: string;
  /** Ready-made configuration (tests). */
  config?: KubeConfig;
  logger: Logger;
}

type PodListener = (pod: V1Pod | null) => void;

function labelValue(text: string): string {
  const v = text.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '');
  return v.slice(0, 63).replace(/-+$/, '') || 'x';
}

function quantityBytes(bytes: number): string {
  return Number.isInteger(bytes / 1024 ** 2) ? `${bytes / 1024 ** 2}Mi` : String(bytes);
}

type ClientModule = typeof import('@kubernetes/client-node');

/**
 * The client library is loaded on first use: a gateway that never runs a Kubernetes service
 * does not pay its start-up time.
 */
async function connect(opts: KubernetesRuntimeOptions): Promise<{ api: CoreV1Api; watch: Watch }> {
  const k: ClientModule = await import('@kubernetes/client-node');
  let kc = opts.config;
  if (!kc) {
    kc = new k.KubeConfig();
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromCluster();
  }
  return { api: kc.makeApiClient(k.CoreV1Api), watch: new k.Watch(kc) };
}

export class KubernetesRuntime implements ReplicaRuntime {
  readonly name = 'kubernetes' as const;
  readonly namespace: string;
  readonly #client: Promise<{ api: CoreV1Api; watch: Watch }>;
  readonly #logger: Logger;
  readonly #pods = new Map<string, V1Pod>();
  readonly #listeners = new Map<string, Set<PodListener>>();
  #watching: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #closed = false;

  constructor(opts: KubernetesRuntimeOptions) {
    if (!opts.config && !opts.kubeconfig && !existsSync(SA_TOKEN_FILE)) {
      throw new Error('no Kubernetes configuration: set KUBECONFIG, or run the gateway in a cluster with a service account');
    }
    this.namespace = opts.namespace ?? (existsSync(SA_NAMESPACE_FILE) ? readNamespaceFile() : 'default');
    this.#client = connect(opts);
    // Surfaced on first use (a start fails with the reason); never an unhandled rejection.
    this.#client.catch(() => undefined);
    this.#logger = opts.logger.child({ component: 'kubernetes-runtime', namespace: this.namespace });
  }

  // ---------------------------------------------------------------- pod watch

  /** Lists, then watches from the list's resourceVersion; starts over when the stream ends. */
  #ensureWatch(): Promise<void> {
    this.#watching ??= new Promise<void>((ready) => {
      const loop = async () => {
        while (!this.#closed) {
          try {
            const { api, watch } = await this.#client;
            const list = await api.listNamespacedPod({ namespace: this.namespace, labelSelector: `${MANAGED_BY}=modelgate` });
            const seen = new Set<string>();
            for (const pod of list.items) {
              const name = pod.metadata!.name!;
              seen.add(name);
              this.#update(name, pod);
            }
            for (const name of [...this.#pods.keys()]) if (!seen.has(name)) this.#update(name, null);
            ready();
            await new Promise<void>((resolve) => {
              void watch
                .watch(
                  `/api/v1/namespaces/${this.namespace}/pods`,
                  { labelSelector: `${MANAGED_BY}=modelgate`, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
                  (type: string, pod: V1Pod) => {
                    const name = pod?.metadata?.name;
                    if (!name || type === 'BOOKMARK') return;
                    this.#update(name, type === 'DELETED' ? null : pod);
                  },
                  () => resolve(),
                )
                .then(
                  (abort) => {
                    this.#abort = abort;
                    if (this.#closed) abort.abort();
                  },
                  () => resolve(),
                );
            });
          } catch (err) {
            this.#logger.warn({ err_message: (err as Error).message }, 'pod list/watch failed; retrying');
            ready();
          }
          if (!this.#closed) await sleep(1_000);
        }
      };
      void loop();
    });
    return this.#watching;
  }

  #update(name: string, pod: V1Pod | null): void {
    if (pod) this.#pods.set(name, pod);
    else this.#pods.delete(name);
    for (const listener of this.#listeners.get(name) ?? []) listener(pod);
  }

  #follow(name: string, listener: PodListener): () => void {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(name);
    };
  }

  close(): void {
    this.#closed = true;
    this.#abort?.abort();
  }

  // ---------------------------------------------------------------- the Pod

  #podFor(spec: ReplicaSpec, name: string): V1Pod {
    const { model } = spec;
    const service = model.service;
    const port = service.port;
    const container = spec.container!;
    const requests: Record<string, string> = {};
    const limits: Record<string, string> = {};
    const r = spec.resources;
    if (r?.cpu !== undefined) requests.cpu = limits.cpu = String(r.cpu);
    if (r?.memory_bytes !== undefined) requests.memory = limits.memory = quantityBytes(r.memory_bytes);
    if (r?.gpu) limits['nvidia.com/gpu'] = String(r.gpu);
    const volumes: V1Volume[] = [{ name: 'dshm', emptyDir: { medium: 'Memory', ...(r?.shared_memory_bytes ? { sizeLimit: quantityBytes(r.shared_memory_bytes) } : {}) } }];
    const mounts: V1VolumeMount[] = [{ name: 'dshm', mountPath: '/dev/shm' }];
    const mv = container.modelVolume;
    if (mv) {
      volumes.push('claim' in mv ? { name: 'model', persistentVolumeClaim: { claimName: mv.claim, readOnly: mv.read_only ?? false } } : { name: 'model', hostPath: { path: mv.host_path, type: 'Directory' } });
      mounts.push({ name: 'model', mountPath: model.model_path, ...('claim' in mv && mv.sub_path ? { subPath: mv.sub_path } : {}), ...('claim' in mv && mv.read_only ? { readOnly: true } : {}) });
    }
    const check = service.health_check;
    const timing = check ?? HEALTH_CHECK_DEFAULTS;
    const probe: V1Probe = {
      ...(check?.path ? { httpGet: { path: check.path, port } } : { tcpSocket: { port } }),
      initialDelaySeconds: Math.ceil(timing.initial_delay),
      periodSeconds: Math.max(1, Math.ceil(timing.interval)),
      failureThreshold: Math.max(1, timing.max_retries),
    };
    const main: V1Container = {
      name: 'model',
      image: container.image,
      command: ['/bin/sh', '-c', podScript(model, { port })],
      env: [
        ...Object.entries(spec.env).map(([n, value]) => ({ name: n, value })),
        { name: 'PORT', value: String(port) },
        { name: 'MODEL_PATH', value: model.model_path },
        { name: 'HOME', value: HOME },
        // A server that must bind one address (not 0.0.0.0) can use the Pod's own.
        { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      ],
      ports: [{ containerPort: port, name: 'http' }],
      readinessProbe: probe,
      volumeMounts: mounts,
      ...(Object.keys(requests).length + Object.keys(limits).length > 0 ? { resources: { requests, limits } } : {}),
    };
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: this.namespace,
        labels: { [MANAGED_BY]: 'modelgate', [SERVICE_LABEL]: labelValue(spec.serviceName), [REPLICA_LABEL]: labelValue(spec.replicaId) },
        annotations: { 'modelgate.io/model': model.name },
      },
      // The controller restarts replicas itself (with backoff and route statuses), so a Pod
      // runs once; a crash is seen as the Pod failing.
      spec: { restartPolicy: 'Never', containers: [main], volumes, terminationGracePeriodSeconds: 10 },
    };
  }

  async start(spec: ReplicaSpec): Promise<ReplicaHandle> {
    if (!spec.container?.image) throw new ReplicaStartError('runtime kubernetes needs the service field "image"');
    await this.#ensureWatch();
    const name = `mg-${labelValue(spec.serviceName)}-${labelValue(spec.replicaId)}-${randomBytes(3).toString('hex')}`.slice(0, 253);
    try {
      await (await this.#client).api.createNamespacedPod({ namespace: this.namespace, body: this.#podFor(spec, name) });
    } catch (err) {
      throw new ReplicaStartError(`cannot create Pod ${name}: ${apiMessage(err)}`);
    }
    spec.log(`[controller] created Pod ${name} in namespace ${this.namespace}`);
    const running = await this.#untilRunning(name, spec);
    const port = spec.model.service.port;
    const ref: ReplicaRef = { runtime: 'kubernetes', node: running.spec?.nodeName ?? null, host: running.status!.podIP!, port, pod: name };
    spec.log(`[controller] Pod ${name} runs on node ${ref.node ?? '?'} at ${ref.host}:${port}`);
    return this.#handle(ref, spec);
  }

  /** Resolves with the Pod once it runs with an IP; throws what keeps it from running. */
  #untilRunning(name: string, spec: ReplicaSpec): Promise<V1Pod> {
    return new Promise<V1Pod>((resolve, reject) => {
      let noted = '';
      const check = (pod: V1Pod | null | undefined) => {
        if (pod === undefined) return;
        if (pod === null) return finish(new ReplicaStartError(`Pod ${name} was deleted before it ran`));
        const problem = podProblem(pod);
        if (problem) return finish(new ReplicaStartError(`Pod ${name}: ${problem}`));
        if (pod.status?.phase === 'Running' && pod.status.podIP) return finish(pod);
        const pending = pendingReason(pod);
        if (pending && pending !== noted) {
          noted = pending;
          spec.log(`[controller] Pod ${name} pending: ${pending}`);
        }
      };
      const unfollow = this.#follow(name, check);
      const onAbort = () => finish(new ReplicaStartError('cancelled'));
      spec.signal.addEventListener('abort', onAbort, { once: true });
      const finish = (outcome: V1Pod | Error) => {
        unfollow();
        spec.signal.removeEventListener('abort', onAbort);
        if (outcome instanceof Error) {
          void this.#delete(name, 0);
          reject(outcome);
        } else resolve(outcome);
      };
      check(this.#pods.get(name));
    });
  }

  #handle(ref: ReplicaRef, spec: Pick<ReplicaSpec, 'log' | 'resources'>): ReplicaHandle {
    const name = ref.pod!;
    const exited = new Promise<ExitInfo>((resolve) => {
      const check = (pod: V1Pod | null | undefined) => {
        if (pod === undefined) return;
        const state = pod?.status?.containerStatuses?.[0]?.state?.terminated;
        if (pod !== null && !state && pod.status?.phase !== 'Failed' && pod.status?.phase !== 'Succeeded') return;
        unfollow();
        const why = pod === null ? 'deleted' : `${pod.status?.phase ?? 'ended'}${state?.reason ? ` (${state.reason})` : ''}`;
        spec.log(`[controller] Pod ${name} ${why}${state?.exitCode !== undefined ? `, exit code ${state.exitCode}` : ''}`);
        resolve({ code: state?.exitCode ?? null, signal: null });
      };
      const unfollow = this.#follow(name, check);
      check(this.#pods.has(name) ? this.#pods.get(name) : null);
    });
    let stopping: Promise<void> | undefined;
    const stop = (graceMs: number): Promise<void> => {
      stopping ??= (async () => {
        await this.#delete(name, Math.ceil(graceMs / 1000));
        await Promise.race([exited, sleep(graceMs + 10_000)]);
      })();
      return stopping;
    };
    const enforced = { cpu: spec.resources?.cpu !== undefined, memory: spec.resources?.memory_bytes !== undefined };
    return { ref, host: ref.host, port: ref.port, pid: undefined, exited, enforced, stop };
  }

  async #delete(name: string, graceSeconds: number): Promise<void> {
    try {
      await (await this.#client).api.deleteNamespacedPod({ name, namespace: this.namespace, gracePeriodSeconds: graceSeconds });
    } catch (err) {
      if (apiCode(err) !== 404) this.#logger.warn({ pod: name, err_message: apiMessage(err) }, 'could not delete Pod');
    }
  }

  async adopt(spec: ReplicaSpec, ref: ReplicaRef): Promise<ReplicaHandle | null> {
    if (ref.runtime !== 'kubernetes' || !ref.pod) return null;
    await this.#ensureWatch();
    const pod = this.#pods.get(ref.pod);
    if (!pod || pod.status?.phase !== 'Running' || pod.status.podIP !== ref.host || podProblem(pod)) return null;
    if (pod.metadata?.labels?.[REPLICA_LABEL] !== labelValue(spec.replicaId)) return null;
    spec.log(`[controller] adopted Pod ${ref.pod} at ${ref.host}:${ref.port}`);
    return this.#handle(ref, spec);
  }

  async #podsOf(serviceName: string, replicaId?: string): Promise<V1Pod[]> {
    const selector = [`${MANAGED_BY}=modelgate`, `${SERVICE_LABEL}=${labelValue(serviceName)}`];
    if (replicaId) selector.push(`${REPLICA_LABEL}=${labelValue(replicaId)}`);
    try {
      return (await (await this.#client).api.listNamespacedPod({ namespace: this.namespace, labelSelector: selector.join(',') })).items;
    } catch (err) {
      this.#logger.warn({ service: serviceName, err_message: apiMessage(err) }, 'could not list Pods');
      return [];
    }
  }

  async release(serviceName: string, replicaId: string): Promise<void> {
    for (const pod of await this.#podsOf(serviceName, replicaId)) await this.#delete(pod.metadata!.name!, 0);
  }

  async releaseService(serviceName: string, keep?: ReadonlySet<string>): Promise<void> {
    const kept = new Set([...(keep ?? [])].map(labelValue));
    for (const pod of await this.#podsOf(serviceName)) {
      if (kept.has(pod.metadata?.labels?.[REPLICA_LABEL] ?? '')) continue;
      await this.#delete(pod.metadata!.name!, 0);
    }
  }
}

/** What makes a Pod's start fail for good, in words for last_error; null while it may still run. */
function podProblem(pod: V1Pod): string | null {
  const phase = pod.status?.phase;
  const cs = pod.status?.containerStatuses?.[0];
  const terminated = cs?.state?.terminated;
  if (terminated) return `container exited with code ${terminated.exitCode}${terminated.reason ? ` (${terminated.reason})` : ''}${terminated.message ? `: ${terminated.message}` : ''}`;
  const waiting = cs?.state?.waiting;
  if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) return `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`;
  if (phase === 'Failed' || phase === 'Succeeded') return `${phase}${pod.status?.reason ? ` (${pod.status.reason})` : ''}${pod.status?.message ? `: ${pod.status.message}` : ''}`;
  return null;
}

function pendingReason(pod: V1Pod): string | null {
  const unscheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled) return `${unscheduled.reason ?? 'unscheduled'}${unscheduled.message ? `: ${unscheduled.message}` : ''}`;
  const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
  return waiting?.reason ?? pod.status?.phase ?? null;
}

function apiCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch {}
  }
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return (err as Error).message;
}

function readNamespaceFile(): string {
  return readFileSync(SA_NAMESPACE_FILE, 'utf8').trim();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
