import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Settings } from '../config/settings.js';
import { GatewayError, type FieldError } from '../errors/gateway-error.js';
import type { Logger } from '../obs/logger.js';
import type { RouteTable } from '../schema/route-table.js';
import { newRouteId, patchEndpoint } from '../control/endpoint-ops.js';
import type { Store } from '../store/store.js';
import { TCP_CHECK } from './health-prober.js';
import { DefinitionError, loadModelDefinition, type LoadedDefinition } from './model-definition.js';
import { ProcessRuntime } from './process-runtime.js';
import { DEFAULT_POLICY, Replica, type ReplicaPolicy, type ReplicaView } from './replica.js';
import type { ReplicaResources, ReplicaRuntime } from './runtime.js';
import {
  parseMemory,
  serviceSpecSchema,
  type CreateServiceInput,
  type PatchServiceInput,
  type Resources,
  type ServiceSpec,
  type ValidateServiceInput,
} from './service-spec.js';

/**
 * The model-service controller: keeps each service's desired replica count running, writes the
 * service's route table (one route per replica) through the store like any control plane, and
 * rolls changes one replica at a time, new before old.
 *
 * Reconciling is level-based: any change (a replica's status, an API call, a 5 s tick) asks
 * for a pass that compares what runs with what is wanted and takes the next steps. Long steps
 * (a start, a drain) run on their own and ask for another pass when they end, so a hung
 * replica can never block the loop.
 */

export type ServiceStatus = 'PROVISIONING' | 'HEALTHY' | 'DEGRADED' | 'UNHEALTHY' | 'TERMINATING';

export interface ServiceView {
  name: string;
  endpoint_id: string;
  url?: string;
  status: ServiceStatus;
  /** Desired routing count. */
  replicas: number;
  healthy_replicas: number;
  public: boolean;
  model_folder: string;
  model_definition_path: string | null;
  model_name: string | null;
  env: Record<string, string>;
  resources: (Resources & { memory_bytes?: number }) | null;
  /** What the runtime enforces of `resources` on this machine. */
  resources_enforced: { cpu: boolean; memory: boolean };
  /** The definition could not be read (until "clear error and retry"). */
  error: string | null;
  created_at: string;
  routes: ReplicaView[];
}

export type ValidateEvent =
  | { type: 'log'; line: string }
  | { type: 'result'; status: 'Finished'; healthy: boolean; error: string | null; details?: FieldError[] };

export interface ServiceControllerOptions {
  store: Store;
  settings: Pick<Settings, 'CONTROLLER_PORT_RANGE' | 'CONTROLLER_WORK_DIR' | 'DATA_DIR' | 'ephemeral'> & Partial<Pick<Settings, 'CONTROLLER_ADVERTISE_HOST'>>;
  logger: Logger;
  /** Default: local processes (ProcessRuntime). */
  runtime?: ReplicaRuntime;
  policy?: Partial<ReplicaPolicy>;
  /** How long a route stays `terminating` (weight 0) before its process is stopped. */
  drainGraceMs?: number;
  reconcileIntervalMs?: number;
  /** Public address of an endpoint, for the `url` of the service view. */
  endpointUrl?: (name: string) => string;
}

interface ServiceState {
  spec: ServiceSpec;
  /** Bumped by a change that needs new replicas (env, resources, definition text). */
  generation: number;
  loaded?: LoadedDefinition;
  definitionError?: string;
  replicas: Replica[];
  terminating?: Promise<void>;
  /** Healthy replicas being drained: at most one at a time during a roll. */
  draining: number;
  lock: Promise<unknown>;
  sync: () => Promise<void>;
  reconcileQueued: boolean;
}

const VALIDATE_SERVICE = '_validate';

function definitionDetails(err: DefinitionError): FieldError[] {
  return err.problems.map((p) => ({ field: p.path, message: p.message }));
}

function invalidDefinition(err: unknown): never {
  if (err instanceof DefinitionError) {
    throw new GatewayError('ADM_INVALID', { message: `model definition is invalid${err.file ? ` (${err.file})` : ''}`, details: definitionDetails(err) });
  }
  throw err;
}

function replicaResources(resources: Resources | undefined): ReplicaResources | undefined {
  if (!resources) return undefined;
  const out: ReplicaResources = {};
  if (resources.cpu !== undefined) out.cpu = resources.cpu;
  if (resources.memory !== undefined) out.memory_bytes = parseMemory(resources.memory) ?? undefined;
  return out;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

export class ServiceController {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #runtime: ReplicaRuntime;
  /** Host in the replicas' route URLs (CONTROLLER_ADVERTISE_HOST). */
  readonly #advertiseHost: string;
  readonly #policy: ReplicaPolicy;
  readonly #drainGraceMs: number;
  readonly #reconcileIntervalMs: number;
  readonly #endpointUrl?: (name: string) => string;
  readonly #services = new Map<string, ServiceState>();
  /** Names with a create in flight, so two concurrent creates cannot both pass the checks. */
  readonly #creating = new Set<string>();
  readonly #validations = new Set<Promise<unknown>>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(opts: ServiceControllerOptions) {
    this.#store = opts.store;
    this.#logger = opts.logger.child({ component: 'controller' });
    this.#policy = { ...DEFAULT_POLICY, ...opts.policy };
    this.#drainGraceMs = opts.drainGraceMs ?? 3_000;
    this.#reconcileIntervalMs = opts.reconcileIntervalMs ?? 5_000;
    this.#endpointUrl = opts.endpointUrl;
    const s = opts.settings;
    const workDir = resolve(s.CONTROLLER_WORK_DIR ?? (s.ephemeral ? join(tmpdir(), `modelgate-services-${process.pid}`) : join(s.DATA_DIR, 'services')));
    this.#advertiseHost = s.CONTROLLER_ADVERTISE_HOST ?? '127.0.0.1';
    this.#runtime = opts.runtime ?? new ProcessRuntime({ workDir, portRange: s.CONTROLLER_PORT_RANGE, logger: this.#logger });
  }

  // ---------------------------------------------------------------- life cycle

  /** Restores every recorded service to its desired count (same endpoint name and id). */
  async start(): Promise<void> {
    this.#stopped = false;
    const records = await this.#store.listServices();
    for (const record of records) {
      try {
        await this.#restore(record.spec);
      } catch (err) {
        this.#logger.error({ err, service: record.name }, 'could not restore service');
      }
    }
    this.#timer = setInterval(() => {
      for (const svc of this.#services.values()) this.#kick(svc);
    }, this.#reconcileIntervalMs);
    this.#timer.unref();
  }

  async #restore(raw: unknown): Promise<void> {
    const parsed = serviceSpecSchema.safeParse(raw);
    if (!parsed.success) {
      this.#logger.error({ issues: parsed.error.issues }, 'stored service record is invalid; skipped');
      return;
    }
    const spec = parsed.data;
    // Processes died with the previous gateway (or were orphaned by a crash): clean them up.
    await this.#runtime.releaseService(spec.name);
    if (spec.terminating) {
      await this.#store.deleteEndpoint(spec.name).catch(() => false);
      await this.#store.deleteService(spec.name);
      return;
    }
    // Stale routes point at dead processes: out of the table before anything else.
    await this.#store.updateEndpoint(spec.name, (current) => {
      if (current && current.id !== spec.endpoint_id) {
        this.#logger.warn({ service: spec.name, endpoint_id: current.id, recorded_id: spec.endpoint_id }, 'endpoint id differs from the service record; keeping the endpoint');
      }
      const base: Omit<RouteTable, 'version'> = current
        ? (({ version: _v, ...rest }) => rest)(current)
        : { id: spec.endpoint_id, name: spec.name, public: spec.public, routes: [], created_at: spec.created_at };
      return { ...base, routes: [], updated_at: new Date().toISOString() };
    });
    const svc = this.#newState(spec);
    try {
      svc.loaded = await loadModelDefinition(spec.model_folder, spec.model_definition_path);
    } catch (err) {
      svc.definitionError = (err as Error).message;
      this.#logger.error({ service: spec.name, error: svc.definitionError }, 'service definition cannot be read');
    }
    this.#services.set(spec.name, svc);
    this.#logger.info({ service: spec.name, replicas: spec.replicas }, 'service restored');
    this.#kick(svc);
  }

  /** Stops every replica (gateway shutdown); the records stay, so start() brings them back. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await Promise.all(
      [...this.#services.values()].map(async (svc) => {
        await Promise.all(svc.replicas.map((r) => r.stop(0)));
        svc.replicas = [];
        await svc.sync().catch(() => undefined);
      }),
    );
    await Promise.allSettled([...this.#validations]);
    this.#services.clear();
  }

  // ---------------------------------------------------------------- API operations

  async create(input: CreateServiceInput): Promise<ServiceView> {
    const { name } = input;
    if (this.#services.has(name) || this.#creating.has(name)) throw new GatewayError('ADM_CONFLICT', { message: `service ${name} already exists` });
    this.#creating.add(name);
    try {
      if (await this.#store.getService(name)) throw new GatewayError('ADM_CONFLICT', { message: `service ${name} already exists` });
      const modelFolder = resolve(input.model_folder);
      const loaded = await loadModelDefinition(modelFolder, input.model_definition_path).catch(invalidDefinition);
      const now = new Date().toISOString();
      const { table } = await this.#store.updateEndpoint(name, (current) => {
        if (current) throw new GatewayError('ADM_CONFLICT', { message: `name ${name} is taken by an existing endpoint` });
        return { id: randomUUID(), name, public: input.public, routes: [], created_at: now, updated_at: now };
      });
      const spec: ServiceSpec = {
        name,
        model_folder: modelFolder,
        model_definition_path: input.model_definition_path,
        replicas: input.replicas,
        public: input.public,
        env: input.env,
        resources: input.resources,
        endpoint_id: table.id,
        created_at: now,
      };
      try {
        await this.#store.putService({ name, spec, updated_at: now });
      } catch (err) {
        await this.#store.deleteEndpoint(name).catch(() => false);
        throw err;
      }
      const svc = this.#newState(spec);
      svc.loaded = loaded;
      this.#services.set(name, svc);
      this.#logger.info({ service: name, replicas: spec.replicas, model_folder: modelFolder }, 'service created');
      this.#kick(svc);
      return this.#view(svc, 0);
    } finally {
      this.#creating.delete(name);
    }
  }

  list(): ServiceView[] {
    return [...this.#services.values()].sort((a, b) => a.spec.name.localeCompare(b.spec.name)).map((svc) => this.#view(svc, 0));
  }

  get(name: string, logLines = 20): ServiceView {
    return this.#view(this.#require(name), logLines);
  }

  /** Changes only the fields given; env, resources or a changed definition roll the replicas. */
  async patch(name: string, input: PatchServiceInput): Promise<ServiceView> {
    const svc = this.#require(name);
    return this.#locked(svc, async () => {
      if (svc.terminating) throw new GatewayError('ADM_CONFLICT', { message: `service ${name} is terminating` });
      const loaded = await loadModelDefinition(svc.spec.model_folder, svc.spec.model_definition_path).catch(invalidDefinition);
      const next: ServiceSpec = { ...svc.spec };
      if (input.replicas !== undefined) next.replicas = input.replicas;
      if (input.public !== undefined) next.public = input.public;
      if (input.env !== undefined) next.env = input.env;
      if (input.resources !== undefined) {
        if (input.resources === null) delete next.resources;
        else next.resources = input.resources;
      }
      const roll = !sameJson(next.env, svc.spec.env) || !sameJson(next.resources, svc.spec.resources) || loaded.text !== svc.loaded?.text || svc.definitionError !== undefined;
      if (input.public !== undefined) await patchEndpoint(this.#store, name, { public: input.public });
      await this.#store.putService({ name, spec: next, updated_at: new Date().toISOString() });
      svc.spec = next;
      svc.loaded = loaded;
      svc.definitionError = undefined;
      if (roll) svc.generation++;
      this.#logger.info({ service: name, replicas: next.replicas, rolling: roll }, 'service modified');
      this.#kick(svc);
      return this.#view(svc, 0);
    });
  }

  /**
   * "Clear error and retry": forgets failed replicas, re-reads the definition and starts
   * again. A definition that still does not parse is reported (ADM_INVALID) and recorded.
   */
  async clearErrors(name: string): Promise<ServiceView> {
    const svc = this.#require(name);
    return this.#locked(svc, async () => {
      if (svc.terminating) throw new GatewayError('ADM_CONFLICT', { message: `service ${name} is terminating` });
      let loaded: LoadedDefinition;
      try {
        loaded = await loadModelDefinition(svc.spec.model_folder, svc.spec.model_definition_path);
      } catch (err) {
        svc.definitionError = (err as Error).message;
        invalidDefinition(err);
      }
      if (loaded.text !== svc.loaded?.text) svc.generation++;
      svc.loaded = loaded;
      svc.definitionError = undefined;
      const failed = svc.replicas.filter((r) => !r.retiring && (r.givenUp || r.status === 'failed_to_start' || r.status === 'unhealthy'));
      await Promise.all(failed.map((r) => this.#retire(svc, r, false)));
      this.#kick(svc);
      return this.#view(svc, 0);
    });
  }

  /**
   * Stops a service for good: routes to `terminating` (weight 0), a drain grace when
   * `drain`, the process groups stopped, then the endpoint (and its tokens) and the record
   * removed. Also called by the endpoints API after a service's endpoint was deleted.
   * Resolves false when there is no such service.
   */
  async terminate(name: string, opts: { drain?: boolean } = {}): Promise<boolean> {
    const svc = this.#services.get(name);
    if (!svc) {
      const record = await this.#store.getService(name);
      if (!record) return false;
      await this.#runtime.releaseService(name);
      await this.#store.deleteEndpoint(name).catch(() => false);
      await this.#store.deleteService(name);
      return true;
    }
    svc.terminating ??= (async () => {
      this.#logger.info({ service: name }, 'terminating service');
      await this.#store.putService({ name, spec: { ...svc.spec, terminating: true }, updated_at: new Date().toISOString() }).catch(() => undefined);
      await Promise.all(svc.replicas.map((r) => r.stop(opts.drain ? this.#drainGraceMs : 0)));
      await Promise.all(svc.replicas.map((r) => this.#runtime.release(name, r.id)));
      await this.#runtime.releaseService(name);
      await this.#store.deleteEndpoint(name).catch((err: unknown) => this.#logger.warn({ err, service: name }, 'could not delete endpoint'));
      await this.#store.deleteService(name);
      this.#services.delete(name);
      this.#logger.info({ service: name }, 'service terminated');
    })();
    await svc.terminating;
    return true;
  }

  /**
   * Runs one replica to healthy or failed without creating a service, reporting its log lines
   * and then a final result (the seed's "Finished"); the replica is stopped afterwards.
   */
  async validate(input: ValidateServiceInput, emit: (event: ValidateEvent) => void, signal?: AbortSignal): Promise<ValidateEvent & { type: 'result' }> {
    let loaded: LoadedDefinition;
    try {
      loaded = await loadModelDefinition(resolve(input.model_folder), input.model_definition_path);
    } catch (err) {
      const result = { type: 'result' as const, status: 'Finished' as const, healthy: false, error: (err as Error).message, details: err instanceof DefinitionError ? definitionDetails(err) : undefined };
      emit(result);
      return result;
    }
    const check = loaded.model.service.health_check ?? TCP_CHECK;
    const windowSeconds = check.initial_delay + check.max_retries * check.interval;
    const timeoutMs = (input.timeout_seconds ?? Math.min(600, windowSeconds + 30)) * 1000;
    const id = `v-${randomBytes(6).toString('hex')}`;
    let settle: (outcome: { healthy: boolean; error: string | null }) => void = () => undefined;
    const outcome = new Promise<{ healthy: boolean; error: string | null }>((r) => (settle = r));
    const replica = new Replica({
      id,
      generation: 0,
      runtime: this.#runtime,
      launch: { serviceName: VALIDATE_SERVICE, modelFolder: resolve(input.model_folder), model: loaded.model, env: input.env, resources: replicaResources(input.resources) },
      policy: { ...this.#policy, startAttempts: 1 },
      onChange: async (r) => {
        if (r.status === 'healthy') settle({ healthy: true, error: null });
        else if (r.status === 'failed_to_start' || r.status === 'unhealthy') settle({ healthy: false, error: r.lastError ?? r.status });
      },
    });
    const unsubscribe = replica.log.subscribe((line) => emit({ type: 'log', line }));
    emit({ type: 'log', line: `[controller] validating ${loaded.file} (model ${loaded.model.name})` });
    const timer = setTimeout(() => settle({ healthy: false, error: `validation timed out after ${timeoutMs / 1000} s` }), timeoutMs);
    const onAbort = () => settle({ healthy: false, error: 'cancelled' });
    signal?.addEventListener('abort', onAbort, { once: true });
    const run = (async () => {
      replica.start();
      const result = await outcome;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      await replica.stop(0);
      unsubscribe();
      await this.#runtime.release(VALIDATE_SERVICE, id);
      const event = { type: 'result' as const, status: 'Finished' as const, healthy: result.healthy, error: result.error };
      emit(event);
      return event;
    })();
    this.#validations.add(run);
    try {
      return await run;
    } finally {
      this.#validations.delete(run);
    }
  }

  // ---------------------------------------------------------------- internals

  #newState(spec: ServiceSpec): ServiceState {
    const svc: ServiceState = {
      spec,
      generation: 1,
      replicas: [],
      draining: 0,
      lock: Promise.resolve(),
      sync: () => Promise.resolve(),
      reconcileQueued: false,
    };
    svc.sync = serialize(() => this.#writeRoutes(svc));
    return svc;
  }

  #require(name: string): ServiceState {
    const svc = this.#services.get(name);
    if (!svc) throw new GatewayError('ADM_NOT_FOUND', { message: `service ${name} not found` });
    return svc;
  }

  #locked<T>(svc: ServiceState, fn: () => Promise<T>): Promise<T> {
    const run = svc.lock.then(fn, fn);
    svc.lock = run.catch(() => undefined);
    return run;
  }

  /** Writes the route table from the replicas as they are now (one atomic store update). */
  async #writeRoutes(svc: ServiceState): Promise<void> {
    const routes = svc.replicas
      .filter((r) => r.port !== undefined)
      .map((r) => ({ id: r.id, url: `http://${this.#advertiseHost}:${r.port}`, weight: r.status === 'terminating' ? 0 : 1, status: r.status }));
    try {
      await patchEndpoint(this.#store, svc.spec.name, { routes });
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'ADM_NOT_FOUND') {
        if (!svc.terminating && !this.#stopped) {
          // Someone deleted the endpoint behind the controller's back: the service goes with it.
          this.#logger.warn({ service: svc.spec.name }, 'endpoint of service was deleted; terminating the service');
          void this.terminate(svc.spec.name).catch(() => undefined);
        }
        return;
      }
      this.#logger.warn({ err, service: svc.spec.name }, 'could not write route table; will retry');
      throw err;
    }
  }

  #kick(svc: ServiceState): void {
    if (svc.reconcileQueued) return;
    svc.reconcileQueued = true;
    setImmediate(() => {
      svc.reconcileQueued = false;
      try {
        this.#reconcile(svc);
      } catch (err) {
        this.#logger.error({ err, service: svc.spec.name }, 'reconcile failed');
      }
    });
  }

  #reconcile(svc: ServiceState): void {
    if (svc.terminating || this.#stopped || !svc.loaded || this.#services.get(svc.spec.name) !== svc) return;
    const desired = svc.spec.replicas;
    const live = svc.replicas.filter((r) => !r.retiring);
    const current = live.filter((r) => r.generation === svc.generation);
    const old = live.filter((r) => r.generation !== svc.generation);
    const healthy = (r: Replica) => r.status === 'healthy';

    // An old replica that serves nothing is not worth keeping during a roll.
    for (const r of old) if (!healthy(r)) void this.#retire(svc, r, false);
    const oldHealthy = old.filter(healthy);

    if (current.length > desired) {
      // Scale down: failed replicas first, then starting ones, then the newest healthy one.
      const rank = (r: Replica) => (r.givenUp ? 0 : healthy(r) ? 2 : 1);
      const order = [...current].sort((a, b) => rank(a) - rank(b) || current.indexOf(b) - current.indexOf(a));
      let excess = current.length - desired;
      for (const r of order) {
        if (excess === 0) break;
        if (healthy(r)) {
          if (svc.draining > 0) break;
          void this.#retire(svc, r, true);
        } else void this.#retire(svc, r, false);
        excess--;
      }
    } else if (current.length < desired) {
      if (oldHealthy.length === 0) {
        // Nothing to replace: start every missing replica at once.
        for (let i = current.length; i < desired; i++) this.#spawn(svc);
      } else if (!current.some((r) => !healthy(r) && !r.givenUp)) {
        this.#spawn(svc); // rolling: one new replica at a time, before an old one goes
      }
    }

    const currentHealthy = current.filter(healthy).length;
    if (oldHealthy.length > 0 && svc.draining === 0 && currentHealthy + oldHealthy.length > desired) {
      void this.#retire(svc, oldHealthy[0], true);
    }
  }

  #spawn(svc: ServiceState): void {
    const replica = new Replica({
      id: newRouteId(),
      generation: svc.generation,
      runtime: this.#runtime,
      launch: {
        serviceName: svc.spec.name,
        modelFolder: svc.spec.model_folder,
        model: svc.loaded!.model,
        env: svc.spec.env,
        resources: replicaResources(svc.spec.resources),
      },
      policy: this.#policy,
      onChange: async () => {
        this.#kick(svc);
        await svc.sync();
      },
    });
    svc.replicas.push(replica);
    replica.start();
  }

  async #retire(svc: ServiceState, replica: Replica, drain: boolean): Promise<void> {
    if (replica.retiring) return;
    const drains = drain && replica.status === 'healthy';
    if (drains) svc.draining++;
    try {
      await replica.stop(drains ? this.#drainGraceMs : 0);
    } finally {
      if (drains) svc.draining--;
      svc.replicas = svc.replicas.filter((r) => r !== replica);
      await this.#runtime.release(svc.spec.name, replica.id).catch(() => undefined);
      await svc.sync().catch(() => undefined);
      this.#kick(svc);
    }
  }

  #status(svc: ServiceState, live: Replica[]): { status: ServiceStatus; healthy: number } {
    const healthy = live.filter((r) => r.status === 'healthy').length;
    if (svc.terminating) return { status: 'TERMINATING', healthy };
    if (healthy >= svc.spec.replicas) return { status: 'HEALTHY', healthy };
    if (healthy > 0) return { status: 'DEGRADED', healthy };
    if (svc.definitionError) return { status: 'UNHEALTHY', healthy };
    if (live.length > 0 && live.every((r) => r.failing)) return { status: 'UNHEALTHY', healthy };
    return { status: 'PROVISIONING', healthy };
  }

  #view(svc: ServiceState, logLines: number): ServiceView {
    const live = svc.replicas.filter((r) => !r.retiring);
    const { status, healthy } = this.#status(svc, live);
    const spec = svc.spec;
    let resources: ServiceView['resources'] = null;
    if (spec.resources) {
      resources = { ...spec.resources };
      if (spec.resources.memory !== undefined) resources.memory_bytes = parseMemory(spec.resources.memory) ?? undefined;
    }
    const enforced = { cpu: live.some((r) => r.enforced.cpu), memory: live.some((r) => r.enforced.memory) };
    const view: ServiceView = {
      name: spec.name,
      endpoint_id: spec.endpoint_id,
      status,
      replicas: spec.replicas,
      healthy_replicas: healthy,
      public: spec.public,
      model_folder: spec.model_folder,
      model_definition_path: svc.loaded?.file ?? spec.model_definition_path ?? null,
      model_name: svc.loaded?.model.name ?? null,
      env: spec.env,
      resources,
      resources_enforced: enforced,
      error: svc.definitionError ?? null,
      created_at: spec.created_at,
      routes: svc.replicas.map((r) => r.view(logLines)),
    };
    if (this.#endpointUrl) view.url = this.#endpointUrl(spec.name);
    return view;
  }
}

/** Runs `fn` one call at a time; calls made while one waits share the next run. */
function serialize(fn: () => Promise<void>): () => Promise<void> {
  let tail: Promise<void> = Promise.resolve();
  let queued: Promise<void> | null = null;
  return () => {
    if (queued) return queued;
    const run = tail.then(() => {
      queued = null;
      return fn();
    });
    queued = run;
    tail = run.catch(() => undefined);
    return run;
  };
}
