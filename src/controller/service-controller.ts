import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import type { Settings } from '../config/settings.js';
import { GatewayError, type FieldError } from '../errors/gateway-error.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { RouteTable } from '../schema/route-table.js';
import { newRouteId, patchEndpoint } from '../control/endpoint-ops.js';
import { isLeaseStore, type LeaseStore, type Store, type StoreEvent } from '../store/store.js';
import { clamp, ServiceAutoscaler, type LastDecision } from './autoscale/autoscaler.js';
import { MetricsCollector } from './autoscale/collector.js';
import { EventLog, type ServiceEvent } from './autoscale/events.js';
import type { AutoscalingSpec } from './autoscale/spec.js';
import { probeOnce, TCP_CHECK } from './health-prober.js';
import { SoleLeadership, type Leadership } from './leadership.js';
import { DefinitionError, loadModelDefinition, type LoadedDefinition } from './model-definition.js';
import { ProcessRuntime } from './process-runtime.js';
import { LogRing } from './log-ring.js';
import { resolveRunAs } from './run-as.js';
import { DEFAULT_POLICY, Replica, type ReplicaLaunch, type ReplicaPolicy, type ReplicaView } from './replica.js';
import type { ReplicaRef, ReplicaResources, ReplicaRuntime } from './runtime.js';
import { prepareWorkDir, releaseWorkDir, type WorkDirSettings } from './work-dir.js';
import {
  DEFAULT_MOUNT_DESTINATION,
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

/** IDLE: autoscaled to zero replicas; the next request wakes it. */
export type ServiceStatus = 'PROVISIONING' | 'HEALTHY' | 'DEGRADED' | 'UNHEALTHY' | 'TERMINATING' | 'IDLE';

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
  /** Another path the replicas see the model folder at (seed: Model Destination For Model Folder). */
  model_mount_destination: string;
  model_name: string | null;
  env: Record<string, string>;
  resources: (Resources & { memory_bytes?: number }) | null;
  /** What the runtime enforces of `resources` on this machine. */
  resources_enforced: { cpu: boolean; memory: boolean };
  /** Where replicas run: "process" (this machine) or "kubernetes" (Pods). */
  runtime: 'process' | 'kubernetes';
  image: string | null;
  model_volume: ServiceSpec['model_volume'] | null;
  /** The definition could not be read (until "clear error and retry"). */
  error: string | null;
  created_at: string;
  routes: ReplicaView[];
  /** Present when the controller scales the service (docs/model-services.md, autoscaling). */
  autoscaling?: AutoscalingSpec & { status: { desired: number; current: number; panicking: boolean; last_decision: LastDecision | null } };
}

export type ValidateEvent =
  | { type: 'log'; line: string }
  | { type: 'result'; status: 'Finished'; healthy: boolean; error: string | null; details?: FieldError[] };

export interface ServiceControllerOptions {
  store: Store;
  settings: Pick<Settings, 'CONTROLLER_PORT_RANGE' | 'CONTROLLER_WORK_DIR' | 'DATA_DIR' | 'ephemeral'> &
    Partial<Pick<Settings, 'CONTROLLER_ADVERTISE_HOST' | 'CONTROLLER_RUN_AS'>>;
  logger: Logger;
  /** Default: local processes (ProcessRuntime). */
  runtime?: ReplicaRuntime;
  /** Builds the Kubernetes runtime on first use (throws when no cluster is configured). */
  kubernetes?: () => ReplicaRuntime;
  /** Runtime of a service that names none (CONTROLLER_RUNTIME). */
  defaultRuntime?: 'process' | 'kubernetes';
  policy?: Partial<ReplicaPolicy>;
  /** How long a route stays `terminating` (weight 0) before its process is stopped. */
  drainGraceMs?: number;
  reconcileIntervalMs?: number;
  /** Public address of an endpoint, for the `url` of the service view. */
  endpointUrl?: (name: string) => string;
  /** Who may act (start/stop replicas, write route tables); default: this process alone. */
  leadership?: Leadership;
  /** How often autoscaled services are decided (default 1 s). */
  autoscaleIntervalMs?: number;
  /** Autoscaled services: how long past the drain grace a replica may finish its requests (default 60 s). */
  scaleDownDrainMaxMs?: number;
  /** modelgate_service_desired_replicas / _current_replicas. */
  metrics?: Metrics;
}

/**
 * What the leader publishes per service (`{prefix}service-status:{name}`, fenced): the observed
 * state non-leaders answer GET with, and where each replica runs, for the next leader to adopt.
 */
interface PublishedStatus {
  view: Omit<ServiceView, 'url'>;
  generation: number;
  /** Digest of what a roll depends on (env, resources, definition text). */
  roll_key: string;
  /** Running replicas; `starting` ones had not passed their health check yet when published. */
  refs: Record<string, ReplicaRef & { generation: number; restarts: number; starting?: boolean }>;
  leader: string;
  updated_at: string;
}

/** How long a DELETE on a non-leader waits for the leader to finish the termination. */
const REMOTE_TERMINATE_WAIT_MS = 30_000;

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
  /** Last status published to the store (skip identical writes). */
  published?: string;
  /** Present when `spec.autoscaling` is: owns the replica count. */
  autoscaler?: ServiceAutoscaler;
  /** A decision is being collected/made (one at a time per service). */
  scaling: boolean;
  /** A wake arrived while deciding: decide again right after. */
  wakePending: boolean;
  events: EventLog;
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
  if (resources.gpu !== undefined) out.gpu = resources.gpu;
  if (resources.shared_memory !== undefined) out.shared_memory_bytes = parseMemory(resources.shared_memory) ?? undefined;
  return out;
}

function launchOf(spec: ServiceSpec, loaded: LoadedDefinition): ReplicaLaunch {
  return {
    serviceName: spec.name,
    modelFolder: spec.model_folder,
    model: loaded.model,
    env: spec.env,
    resources: replicaResources(spec.resources),
    mountDestination: spec.model_mount_destination,
    container: spec.image ? { image: spec.image, modelVolume: spec.model_volume } : undefined,
  };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

export class ServiceController {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #runtime: ReplicaRuntime;
  readonly #kubernetesFactory: (() => ReplicaRuntime) | undefined;
  #kubernetes: ReplicaRuntime | undefined;
  readonly #defaultRuntime: 'process' | 'kubernetes';
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
  #autoscaleTimer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  readonly #autoscaleIntervalMs: number;
  readonly #scaleDownDrainMaxMs: number;
  readonly #collector: MetricsCollector;
  readonly #metrics?: Metrics;
  #stopped = false;
  readonly #leadership: Leadership;
  /** Set with a shared store: the leader publishes status there, followers read it. */
  readonly #cluster: LeaseStore | undefined;
  /** This instance currently acts on services (leader, restore done or in progress). */
  #acting = false;
  #takeover: Promise<void> = Promise.resolve();
  /** The process runtime's work dir, released on stop (work-dir.ts). */
  #workDir: { dir: string; settings: WorkDirSettings } | null = null;

  constructor(opts: ServiceControllerOptions) {
    this.#store = opts.store;
    this.#logger = opts.logger.child({ component: 'controller' });
    this.#policy = { ...DEFAULT_POLICY, ...opts.policy };
    this.#drainGraceMs = opts.drainGraceMs ?? 3_000;
    this.#reconcileIntervalMs = opts.reconcileIntervalMs ?? 5_000;
    this.#endpointUrl = opts.endpointUrl;
    this.#autoscaleIntervalMs = opts.autoscaleIntervalMs ?? 1_000;
    this.#scaleDownDrainMaxMs = opts.scaleDownDrainMaxMs ?? 60_000;
    this.#collector = new MetricsCollector(opts.store);
    this.#metrics = opts.metrics;
    const s = opts.settings;
    this.#advertiseHost = s.CONTROLLER_ADVERTISE_HOST ?? '127.0.0.1';
    const workDir = opts.runtime ? null : prepareWorkDir(s);
    if (workDir) this.#workDir = { dir: workDir, settings: s };
    this.#runtime =
      opts.runtime ??
      new ProcessRuntime({
        // Outside DATA_DIR (see work-dir.ts); the replica user, if any, is resolved once here.
        workDir: workDir!,
        portRange: s.CONTROLLER_PORT_RANGE,
        logger: this.#logger,
        runAs: s.CONTROLLER_RUN_AS ? resolveRunAs(s.CONTROLLER_RUN_AS) : null,
      });
    this.#kubernetesFactory = opts.kubernetes;
    this.#defaultRuntime = opts.defaultRuntime ?? 'process';
    this.#leadership = opts.leadership ?? new SoleLeadership();
    this.#cluster = opts.leadership && isLeaseStore(this.#store) ? this.#store : undefined;
  }

  /** The runtime a service's replicas use; ADM_INVALID when it cannot be had here. */
  #runtimeFor(spec: Pick<ServiceSpec, 'runtime'>): ReplicaRuntime {
    // A record without a runtime predates the field: it ran as local processes.
    if ((spec.runtime ?? 'process') === 'process') return this.#runtime;
    if (!this.#kubernetes) {
      if (!this.#kubernetesFactory) throw new GatewayError('ADM_INVALID', { details: [{ field: 'runtime', message: 'the kubernetes runtime is not available in this gateway' }] });
      try {
        this.#kubernetes = this.#kubernetesFactory();
      } catch (err) {
        throw new GatewayError('ADM_INVALID', { details: [{ field: 'runtime', message: `kubernetes runtime unavailable: ${(err as Error).message}` }] });
      }
    }
    return this.#kubernetes;
  }

  get leadership(): Leadership {
    return this.#leadership;
  }

  // ---------------------------------------------------------------- life cycle

  /** Restores every recorded service to its desired count (same endpoint name and id). */
  async start(): Promise<void> {
    this.#stopped = false;
    this.#timer = setInterval(() => {
      for (const svc of this.#services.values()) {
        this.#kick(svc);
        void this.#publish(svc);
      }
    }, this.#reconcileIntervalMs);
    this.#timer.unref();
    this.#autoscaleTimer = setInterval(() => {
      for (const svc of this.#services.values()) if (svc.autoscaler) void this.#autoscale(svc, false);
    }, this.#autoscaleIntervalMs);
    this.#autoscaleTimer.unref();
    this.#unsubscribe = this.#store.subscribe((event) => {
      if (event.kind === 'wake') {
        // A gateway holds a request for a service at zero (this process or another instance);
        // only the leader has the service to wake.
        const svc = this.#services.get(event.name);
        if (svc?.autoscaler) void this.#autoscale(svc, true);
        return;
      }
      if (this.#cluster) this.#onStoreEvent(event);
    });
    if (!this.#cluster) {
      // One process, one controller: it always acts, and replicas died with the last run.
      this.#acting = true;
      await this.#restoreAll(false);
      return;
    }
    this.#leadership.onChange((leading) => {
      this.#takeover = this.#takeover.then(() => (leading ? this.#becomeLeader() : this.#stepDown())).catch((err: unknown) => this.#logger.error({ err }, 'leadership change failed'));
    });
    this.#leadership.start();
  }

  async #restoreAll(adopt: boolean): Promise<void> {
    const records = await this.#store.listServices();
    for (const record of records) {
      if (this.#stopped || !this.#acting) return;
      try {
        await this.#restore(record.spec, adopt);
      } catch (err) {
        this.#logger.error({ err, service: record.name }, 'could not restore service');
      }
    }
  }

  async #becomeLeader(): Promise<void> {
    if (this.#stopped || this.#acting) return;
    this.#acting = true;
    this.#logger.info({ instance: this.#leadership.instance }, 'leading: adopting services');
    await this.#restoreAll(true);
  }

  /** Lost the lease: stop acting at once and leave the replicas to the new leader. */
  async #stepDown(): Promise<void> {
    if (!this.#acting) return;
    this.#acting = false;
    for (const svc of this.#services.values()) for (const r of svc.replicas) r.abandon();
    this.#services.clear();
    this.#logger.warn({ instance: this.#leadership.instance }, 'no longer leading: replicas left to the new leader');
  }

  #onStoreEvent(event: StoreEvent): void {
    if (!this.#acting || this.#stopped) return;
    if (event.kind === 'service') void this.#onServiceChanged(event.name).catch((err: unknown) => this.#logger.warn({ err, service: event.name }, 'could not apply service change'));
    else if (event.kind === 'resync') void this.#resyncServices().catch(() => undefined);
  }

  async #resyncServices(): Promise<void> {
    const names = new Set((await this.#store.listServices()).map((r) => r.name));
    for (const name of names) await this.#onServiceChanged(name);
    for (const name of this.#services.keys()) if (!names.has(name)) await this.#onServiceChanged(name);
  }

  /** The leader applies a desired state written by any instance (create, patch, delete). */
  async #onServiceChanged(name: string): Promise<void> {
    if (this.#creating.has(name)) return;
    const record = await this.#store.getService(name);
    if (!this.#acting) return;
    const svc = this.#services.get(name);
    if (!record) {
      if (svc && !svc.terminating) await this.terminate(name);
      return;
    }
    const parsed = serviceSpecSchema.safeParse(record.spec);
    if (!parsed.success) return;
    const spec = parsed.data;
    if (!svc) {
      await this.#restore(spec, false);
      return;
    }
    if (spec.terminating) {
      if (!svc.terminating) void this.terminate(name, { drain: true });
      return;
    }
    if (sameJson(spec, svc.spec) || svc.terminating) return;
    await this.#locked(svc, async () => {
      const clear = (spec.clear_errors ?? 0) !== (svc.spec.clear_errors ?? 0);
      let loaded: LoadedDefinition | undefined;
      try {
        loaded = await loadModelDefinition(spec.model_folder, spec.model_definition_path);
      } catch (err) {
        svc.definitionError = (err as Error).message;
      }
      const roll = !sameJson(spec.env, svc.spec.env) || !sameJson(spec.resources, svc.spec.resources) || (loaded !== undefined && loaded.text !== svc.loaded?.text);
      const autoscalingChanged = !sameJson(spec.autoscaling, svc.spec.autoscaling);
      svc.spec = spec;
      if (autoscalingChanged) {
        this.#setAutoscaling(svc);
        await svc.sync().catch(() => undefined);
      }
      if (loaded) {
        svc.loaded = loaded;
        svc.definitionError = undefined;
      }
      if (roll) svc.generation++;
      if (clear) {
        const failed = svc.replicas.filter((r) => !r.retiring && (r.givenUp || r.status === 'failed_to_start' || r.status === 'unhealthy'));
        await Promise.all(failed.map((r) => this.#retire(svc, r, false)));
      }
      this.#logger.info({ service: name, replicas: spec.replicas, rolling: roll }, 'service changed in the store');
      this.#kick(svc);
    });
  }

  #rollKey(spec: ServiceSpec, loaded: LoadedDefinition | undefined): string {
    return createHash('sha256')
      .update(JSON.stringify([spec.env, spec.resources ?? null, loaded?.text ?? null]))
      .digest('hex')
      .slice(0, 32);
  }

  /**
   * Replicas recorded by the previous leader that still run and answer their health check, and
   * those it recorded while they were starting (they get a new health window here); the others
   * are stopped.
   */
  async #adoptable(spec: ServiceSpec, loaded: LoadedDefinition, status: PublishedStatus | null, generation: number): Promise<Replica[]> {
    if (!status) return [];
    const out: Replica[] = [];
    for (const [id, ref] of Object.entries(status.refs)) {
      const log = new LogRing(500);
      const launch = launchOf(spec, loaded);
      const abort = new AbortController();
      const runtime = this.#runtimeFor(spec);
      // Only where it runs: the handle's ref is published again as this leader's own.
      const { generation: _generation, restarts: _restarts, starting: _starting, ...where } = ref;
      const handle = await runtime
        .adopt({ ...launch, replicaId: id, log: (line) => log.push(line), signal: abort.signal }, where)
        .catch(() => null);
      if (!handle) continue;
      const probe = await probeOnce(handle.host, handle.port, loaded.model.service.health_check ?? TCP_CHECK);
      const starting = !probe.ok && ref.starting === true;
      if (!probe.ok && !starting) {
        log.push(`[controller] not adopted: ${probe.detail}`);
        await handle.stop(0);
        continue;
      }
      if (starting) log.push(`[controller] adopted while starting (${probe.detail}); waiting for its health check`);
      const replica: Replica = new Replica({
        id,
        generation: ref.generation === status.generation ? generation : generation - 1,
        runtime,
        launch,
        policy: this.#policy,
        log,
        adopted: { handle, restarts: ref.restarts, starting },
        onChange: async () => {
          const svc = this.#services.get(spec.name);
          if (!svc) return;
          this.#kick(svc);
          await svc.sync();
        },
      });
      out.push(replica);
    }
    return out;
  }

  async #restore(raw: unknown, adopt = false): Promise<void> {
    const parsed = serviceSpecSchema.safeParse(raw);
    if (!parsed.success) {
      this.#logger.error({ issues: parsed.error.issues }, 'stored service record is invalid; skipped');
      return;
    }
    const spec = parsed.data;
    const status = adopt && this.#cluster ? parsePublished(await this.#cluster.getServiceStatus(spec.name).catch(() => null)) : null;
    let loaded: LoadedDefinition | undefined;
    let definitionError: string | undefined;
    try {
      loaded = await loadModelDefinition(spec.model_folder, spec.model_definition_path);
    } catch (err) {
      definitionError = (err as Error).message;
    }
    let generation = 1;
    let adopted: Replica[] = [];
    if (status && loaded && !spec.terminating) {
      generation = status.roll_key === this.#rollKey(spec, loaded) ? status.generation : status.generation + 1;
      adopted = await this.#adoptable(spec, loaded, status, generation);
    }
    // Replicas that died with the previous gateway, or were orphaned by a crash, are cleaned
    // up; adopted ones are kept.
    await this.#runtimeFor(spec)
      .releaseService(spec.name, new Set(adopted.map((r) => r.id)))
      .catch((err: unknown) => this.#logger.warn({ err, service: spec.name }, 'could not release leftovers'));
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
      const keep = current ? current.routes.filter((r) => adopted.some((a) => a.id === r.id)) : [];
      const next: Omit<RouteTable, 'version'> = { ...base, routes: keep, updated_at: new Date().toISOString() };
      if (spec.autoscaling) next.autoscaled = true;
      else delete next.autoscaled;
      return next;
    }, { fence: this.#leadership.fence });
    const svc = this.#newState(spec);
    svc.generation = generation;
    svc.loaded = loaded;
    svc.definitionError = definitionError;
    if (definitionError) this.#logger.error({ service: spec.name, error: definitionError }, 'service definition cannot be read');
    svc.replicas = adopted;
    if (!this.#acting || this.#stopped) {
      for (const r of adopted) r.abandon();
      return;
    }
    this.#services.set(spec.name, svc);
    for (const r of adopted) r.start();
    this.#logger.info({ service: spec.name, replicas: spec.replicas, adopted: adopted.map((r) => r.pid) }, adopt ? 'service adopted' : 'service restored');
    await svc.sync().catch(() => undefined);
    this.#kick(svc);
  }

  /** Stops every replica (gateway shutdown); the records stay, so start() brings them back. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#autoscaleTimer) clearInterval(this.#autoscaleTimer);
    this.#unsubscribe?.();
    // A graceful stop stops the replicas, as with one gateway (an operator stopping the only
    // instance expects nothing left running); only a leader that dies leaves them for adoption.
    await Promise.all(
      [...this.#services.values()].map(async (svc) => {
        await Promise.all(svc.replicas.map((r) => r.stop(0)));
        svc.replicas = [];
        await svc.sync().catch(() => undefined);
      }),
    );
    await Promise.allSettled([...this.#validations]);
    this.#services.clear();
    this.#acting = false;
    await this.#leadership.stop();
    if (this.#workDir) await releaseWorkDir(this.#workDir.dir, this.#workDir.settings);
  }

  // ---------------------------------------------------------------- API operations

  async create(input: CreateServiceInput): Promise<ServiceView> {
    const { name } = input;
    if (this.#services.has(name) || this.#creating.has(name)) throw new GatewayError('ADM_CONFLICT', { message: `service ${name} already exists` });
    this.#creating.add(name);
    try {
      if (await this.#store.getService(name)) throw new GatewayError('ADM_CONFLICT', { message: `service ${name} already exists` });
      const runtime = input.runtime ?? this.#defaultRuntime;
      this.#runtimeFor({ runtime });
      if (runtime === 'kubernetes' && !input.image) throw new GatewayError('ADM_INVALID', { details: [{ field: 'image', message: 'required with runtime "kubernetes"' }] });
      const modelFolder = resolve(input.model_folder);
      const loaded = await loadModelDefinition(modelFolder, input.model_definition_path).catch(invalidDefinition);
      const now = new Date().toISOString();
      const { table } = await this.#store.updateEndpoint(name, (current) => {
        if (current) throw new GatewayError('ADM_CONFLICT', { message: `name ${name} is taken by an existing endpoint` });
        const created: Omit<RouteTable, 'version'> = { id: randomUUID(), name, public: input.public, routes: [], created_at: now, updated_at: now };
        if (input.autoscaling) created.autoscaled = true;
        return created;
      });
      const spec: ServiceSpec = {
        name,
        model_folder: modelFolder,
        model_definition_path: input.model_definition_path,
        model_mount_destination: input.model_mount_destination,
        replicas: input.replicas,
        public: input.public,
        env: input.env,
        resources: input.resources,
        runtime,
        ...(input.image ? { image: input.image } : {}),
        ...(input.model_volume ? { model_volume: input.model_volume } : {}),
        endpoint_id: table.id,
        created_at: now,
      };
      if (input.autoscaling) {
        spec.autoscaling = input.autoscaling;
        // The first count: `replicas` within the bounds (at least one, to see the model start).
        spec.autoscaling_desired = clamp(input.replicas, Math.max(1, input.autoscaling.min_replicas), input.autoscaling.max_replicas);
      }
      try {
        await this.#store.putService({ name, spec, updated_at: now });
      } catch (err) {
        await this.#store.deleteEndpoint(name).catch(() => false);
        throw err;
      }
      const svc = this.#newState(spec);
      svc.loaded = loaded;
      this.#logger.info({ service: name, replicas: spec.replicas, model_folder: modelFolder }, 'service created');
      // A follower only writes the desired state; the leader starts the replicas on the event.
      if (!this.#acting) return this.#view(svc, 0);
      this.#services.set(name, svc);
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

  /** The API's list: this controller's services when it acts, the store's view otherwise. */
  async readAll(): Promise<ServiceView[]> {
    if (this.#acting) return this.list();
    const records = await this.#store.listServices();
    return Promise.all(records.map((r) => this.#remoteView(r.spec)));
  }

  async read(name: string, logLines = 20): Promise<ServiceView> {
    if (this.#acting) return this.get(name, logLines);
    const record = await this.#store.getService(name);
    if (!record) throw new GatewayError('ADM_NOT_FOUND', { message: `service ${name} not found` });
    return this.#remoteView(record.spec);
  }

  /** A follower's answer: the desired state from the record, what runs from the leader's status. */
  async #remoteView(raw: unknown): Promise<ServiceView> {
    const spec = serviceSpecSchema.parse(raw);
    const svc = this.#newState(spec);
    const view = this.#view(svc, 0);
    const status = parsePublished(await this.#cluster?.getServiceStatus(spec.name).catch(() => null));
    if (!status) return view;
    const observed = status.view;
    return {
      ...view,
      status: spec.terminating ? 'TERMINATING' : observed.status,
      healthy_replicas: observed.healthy_replicas,
      model_definition_path: observed.model_definition_path ?? view.model_definition_path,
      model_name: observed.model_name,
      resources_enforced: observed.resources_enforced,
      error: observed.error,
      routes: observed.routes,
    };
  }

  /** Desired state for a follower's patch / clear: read, change, write; the leader acts on the event. */
  async #patchRecord(name: string, change: (spec: ServiceSpec) => ServiceSpec): Promise<ServiceView> {
    const record = await this.#store.getService(name);
    if (!record) throw new GatewayError('ADM_NOT_FOUND', { message: `service ${name} not found` });
    const spec = serviceSpecSchema.parse(record.spec);
    if (spec.terminating) throw new GatewayError('ADM_CONFLICT', { message: `service ${name} is terminating` });
    await loadModelDefinition(spec.model_folder, spec.model_definition_path).catch(invalidDefinition);
    const next = change(spec);
    await this.#store.putService({ name, spec: next, updated_at: new Date().toISOString() });
    return this.#remoteView(next);
  }

  /** Changes only the fields given; env, resources or a changed definition roll the replicas. */
  async patch(name: string, input: PatchServiceInput): Promise<ServiceView> {
    if (!this.#acting) {
      if (input.public !== undefined) await patchEndpoint(this.#store, name, { public: input.public }).catch(() => undefined);
      return this.#patchRecord(name, (spec) => {
        const next: ServiceSpec = { ...spec };
        if (input.replicas !== undefined) next.replicas = input.replicas;
        if (input.public !== undefined) next.public = input.public;
        if (input.env !== undefined) next.env = input.env;
        if (input.resources === null) delete next.resources;
        else if (input.resources !== undefined) next.resources = input.resources;
        if (input.autoscaling === null) {
          delete next.autoscaling;
          delete next.autoscaling_desired;
        } else if (input.autoscaling !== undefined) {
          next.autoscaling = input.autoscaling;
          next.autoscaling_desired = clamp(spec.autoscaling_desired ?? spec.replicas, input.autoscaling.min_replicas, input.autoscaling.max_replicas);
        }
        return next;
      });
    }
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
      if (input.autoscaling === null) {
        delete next.autoscaling;
        delete next.autoscaling_desired;
      } else if (input.autoscaling !== undefined) {
        next.autoscaling = input.autoscaling;
        const from = svc.autoscaler?.desired ?? this.#liveCount(svc);
        next.autoscaling_desired = clamp(from, input.autoscaling.min_replicas, input.autoscaling.max_replicas);
      }
      const roll = !sameJson(next.env, svc.spec.env) || !sameJson(next.resources, svc.spec.resources) || loaded.text !== svc.loaded?.text || svc.definitionError !== undefined;
      if (input.public !== undefined) await patchEndpoint(this.#store, name, { public: input.public });
      await this.#store.putService({ name, spec: next, updated_at: new Date().toISOString() });
      const wasAutoscaled = svc.spec.autoscaling !== undefined;
      svc.spec = next;
      svc.loaded = loaded;
      svc.definitionError = undefined;
      if (roll) svc.generation++;
      if (input.autoscaling !== undefined) this.#setAutoscaling(svc);
      if (wasAutoscaled !== (next.autoscaling !== undefined)) await svc.sync().catch(() => undefined);
      this.#logger.info({ service: name, replicas: this.#desired(svc), autoscaling: next.autoscaling !== undefined, rolling: roll }, 'service modified');
      this.#kick(svc);
      return this.#view(svc, 0);
    });
  }

  /**
   * "Clear error and retry": forgets failed replicas, re-reads the definition and starts
   * again. A definition that still does not parse is reported (ADM_INVALID) and recorded.
   */
  async clearErrors(name: string): Promise<ServiceView> {
    if (!this.#acting) return this.#patchRecord(name, (spec) => ({ ...spec, clear_errors: (spec.clear_errors ?? 0) + 1 }));
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
    if (!this.#acting) return this.#terminateRemote(name);
    const svc = this.#services.get(name);
    if (!svc) {
      const record = await this.#store.getService(name);
      if (!record) return false;
      const parsed = serviceSpecSchema.safeParse(record.spec);
      await (parsed.success ? this.#runtimeFor(parsed.data) : this.#runtime).releaseService(name).catch(() => undefined);
      await this.#store.deleteEndpoint(name).catch(() => false);
      await this.#store.deleteService(name);
      return true;
    }
    svc.terminating ??= (async () => {
      this.#logger.info({ service: name }, 'terminating service');
      await this.#store.putService({ name, spec: { ...svc.spec, terminating: true }, updated_at: new Date().toISOString() }).catch(() => undefined);
      await Promise.all(svc.replicas.map((r) => r.stop(opts.drain ? this.#drainGraceMs : 0)));
      const runtime = this.#runtimeFor(svc.spec);
      await Promise.all(svc.replicas.map((r) => runtime.release(name, r.id).catch(() => undefined)));
      await runtime.releaseService(name).catch(() => undefined);
      await this.#store.deleteEndpoint(name).catch((err: unknown) => this.#logger.warn({ err, service: name }, 'could not delete endpoint'));
      await this.#store.deleteService(name);
      this.#services.delete(name);
      this.#metrics?.serviceDesiredReplicas.remove(name);
      this.#metrics?.serviceCurrentReplicas.remove(name);
      this.#logger.info({ service: name }, 'service terminated');
    })();
    await svc.terminating;
    return true;
  }

  /**
   * A follower marks the record terminating and waits (bounded) for the leader to finish,
   * so a DELETE answered 204 means the endpoint is gone whenever a leader is alive.
   */
  async #terminateRemote(name: string): Promise<boolean> {
    const record = await this.#store.getService(name);
    if (!record) return false;
    const spec = serviceSpecSchema.safeParse(record.spec);
    if (!spec.success) {
      await this.#store.deleteService(name);
      return true;
    }
    if (!spec.data.terminating) await this.#store.putService({ name, spec: { ...spec.data, terminating: true }, updated_at: new Date().toISOString() });
    const until = Date.now() + REMOTE_TERMINATE_WAIT_MS;
    while (Date.now() < until && !this.#stopped) {
      if (this.#acting) return this.terminate(name);
      if (!(await this.#store.getService(name).catch(() => record))) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
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
      launch: { serviceName: VALIDATE_SERVICE, modelFolder: resolve(input.model_folder), mountDestination: input.model_mount_destination, model: loaded.model, env: input.env, resources: replicaResources(input.resources) },
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
      scaling: false,
      wakePending: false,
      events: new EventLog(),
    };
    svc.sync = serialize(() => this.#writeRoutes(svc));
    this.#setAutoscaling(svc);
    return svc;
  }

  // ---------------------------------------------------------------- autoscaling

  /** Replicas wanted now: the autoscaler's decision, or the fixed count. */
  #desired(svc: ServiceState): number {
    return svc.autoscaler ? svc.autoscaler.desired : svc.spec.replicas;
  }

  #liveCount(svc: ServiceState): number {
    return svc.replicas.filter((r) => !r.retiring).length;
  }

  /** Takes `spec.autoscaling` (and the recorded count) into the service's autoscaler. */
  #setAutoscaling(svc: ServiceState): void {
    const auto = svc.spec.autoscaling;
    if (!auto) {
      if (svc.autoscaler) this.#metrics?.serviceDesiredReplicas.labels(svc.spec.name).set(svc.spec.replicas);
      svc.autoscaler = undefined;
      return;
    }
    const recorded = svc.spec.autoscaling_desired ?? clamp(svc.spec.replicas, auto.min_replicas, auto.max_replicas);
    if (svc.autoscaler) svc.autoscaler.setSpec(auto);
    else svc.autoscaler = new ServiceAutoscaler(auto, recorded);
    this.#metrics?.serviceDesiredReplicas.labels(svc.spec.name).set(svc.autoscaler.desired);
  }

  /** Recent events of a service, newest first. */
  events(name: string, limit?: number): ServiceEvent[] {
    return this.#require(name).events.list(limit);
  }

  /**
   * One autoscaling round for a service: collect, decide, apply. `wake`: a gateway holds a
   * request for it, which counts as demand even before its load report arrives. Rounds of one
   * service never overlap; a wake during a round gets a round of its own right after.
   */
  async #autoscale(svc: ServiceState, wake: boolean): Promise<void> {
    if (svc.scaling) {
      if (wake) svc.wakePending = true;
      return;
    }
    if (!svc.autoscaler || svc.terminating || this.#stopped || this.#services.get(svc.spec.name) !== svc) return;
    svc.scaling = true;
    try {
      const autoscaler = svc.autoscaler;
      const live = svc.replicas.filter((r) => !r.retiring);
      const ready = live.filter((r) => r.status === 'healthy');
      this.#collector.forget(new Set(live.map((r) => r.id)));
      let collected;
      try {
        collected = await this.#collector.collect(
          svc.spec.name,
          autoscaler.spec,
          ready.map((r) => ({ id: r.id, pid: r.pid, url: `http://127.0.0.1:${r.port}` })),
        );
      } catch (err) {
        // Without the store's load reports there is nothing to decide from (a wake still wakes).
        if (!wake) {
          this.#logger.debug({ service: svc.spec.name, err_message: (err as Error).message }, 'autoscaling: no load reports this round');
          return;
        }
        collected = { in_flight: 0, queued: 0, rps: 0, p99_latency_ms: null };
      }
      if (svc.autoscaler !== autoscaler || svc.terminating) return;
      if (wake) collected.queued = Math.max(1, collected.queued);
      const change = autoscaler.tick(Date.now(), { ...collected, ready: ready.length });
      this.#metrics?.serviceDesiredReplicas.labels(svc.spec.name).set(autoscaler.desired);
      this.#metrics?.serviceCurrentReplicas.labels(svc.spec.name).set(live.length);
      if (change) await this.#applyDecision(svc, change);
    } catch (err) {
      this.#logger.error({ err, service: svc.spec.name }, 'autoscaling round failed');
    } finally {
      svc.scaling = false;
      if (svc.wakePending) {
        svc.wakePending = false;
        void this.#autoscale(svc, true);
      }
    }
  }

  async #applyDecision(svc: ServiceState, change: LastDecision): Promise<void> {
    const name = svc.spec.name;
    svc.events.add({ kind: 'scale', message: `scale ${change.from} → ${change.to}: ${change.reason}`, from: change.from, to: change.to, reason: change.reason });
    this.#logger.info({ service: name, from: change.from, to: change.to, reason: change.reason }, 'autoscaling decision');
    this.#kick(svc);
    // Recorded, so a restarted controller resumes at this count instead of starting over.
    await this.#locked(svc, async () => {
      if (svc.terminating || !svc.autoscaler) return;
      const next: ServiceSpec = { ...svc.spec, autoscaling_desired: svc.autoscaler.desired };
      await this.#store.putService({ name, spec: next, updated_at: new Date().toISOString() });
      svc.spec = next;
    }).catch((err: unknown) => this.#logger.warn({ service: name, err_message: (err as Error).message }, 'could not record the autoscaling decision'));
  }

  /** Restarts and health changes of a replica, for the service's events. */
  #noteReplica(svc: ServiceState, replica: Replica, seen: { status: string; restarts: number }): void {
    if (replica.restarts > seen.restarts) {
      seen.restarts = replica.restarts;
      svc.events.add({ kind: 'restart', message: `replica ${replica.id} restarted (restart ${replica.restarts})`, replica: replica.id });
    }
    if (replica.status !== seen.status) {
      seen.status = replica.status;
      const why = (replica.status === 'unhealthy' || replica.status === 'failed_to_start') && replica.lastError ? `: ${replica.lastError}` : '';
      svc.events.add({ kind: 'health', message: `replica ${replica.id} ${replica.status}${why}`, replica: replica.id, status: replica.status });
    }
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
      .map((r) => ({ id: r.id, url: `http://${this.#routeHost(r)}:${r.port}`, weight: r.status === 'terminating' ? 0 : 1, status: r.status }));
    if (!this.#acting) return;
    try {
      await patchEndpoint(this.#store, svc.spec.name, { routes, autoscaled: svc.spec.autoscaling !== undefined }, undefined, this.#leadership.fence);
      await this.#publish(svc);
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

  /** Local processes are reached at CONTROLLER_ADVERTISE_HOST; Pods at their own IP. */
  #routeHost(r: Replica): string {
    return r.ref && r.ref.runtime !== 'process' ? r.ref.host : this.#advertiseHost;
  }

  /** Writes the observed state for followers and the next leader (lease mode only). */
  async #publish(svc: ServiceState): Promise<void> {
    const fence = this.#leadership.fence;
    if (!this.#cluster || !fence || !this.#acting || svc.terminating) return;
    const { url: _url, ...view } = this.#view(svc, 0);
    const refs: PublishedStatus['refs'] = {};
    // Starting replicas too: a leader that dies while a model loads must not leave its process
    // running unknown to the next leader (which would start another beside it).
    for (const r of svc.replicas) {
      if (!r.ref || !r.running || r.retiring || (r.status !== 'healthy' && r.status !== 'provisioning')) continue;
      refs[r.id] = { ...r.ref, generation: r.generation, restarts: r.restarts, ...(r.status === 'healthy' ? {} : { starting: true }) };
    }
    const body = { view, generation: svc.generation, roll_key: this.#rollKey(svc.spec, svc.loaded), refs, leader: this.#leadership.instance };
    const text = JSON.stringify(body);
    if (text === svc.published) return;
    try {
      await this.#cluster.putServiceStatus(svc.spec.name, { ...body, updated_at: new Date().toISOString() } satisfies PublishedStatus, fence);
      svc.published = text;
    } catch (err) {
      this.#logger.debug({ err, service: svc.spec.name }, 'could not publish service status');
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
    if (svc.terminating || this.#stopped || !this.#acting || !svc.loaded || this.#services.get(svc.spec.name) !== svc) return;
    const desired = this.#desired(svc);
    const live = svc.replicas.filter((r) => !r.retiring);
    this.#metrics?.serviceDesiredReplicas.labels(svc.spec.name).set(desired);
    this.#metrics?.serviceCurrentReplicas.labels(svc.spec.name).set(live.length);
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
    const seen = { status: '', restarts: 0 };
    const replica = new Replica({
      id: newRouteId(),
      generation: svc.generation,
      runtime: this.#runtimeFor(svc.spec),
      launch: launchOf(svc.spec, svc.loaded!),
      policy: this.#policy,
      onChange: async (r) => {
        this.#noteReplica(svc, r, seen);
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
      // An autoscaled service's gateways report requests per route: its drain lasts until the
      // replica's last request is done (within scaleDownDrainMaxMs), not a fixed time.
      const until = drains && svc.autoscaler ? { drained: async () => (await this.#collector.routeInFlight(svc.spec.name, replica.id)) === 0, maxMs: this.#scaleDownDrainMaxMs } : undefined;
      await replica.stop(drains ? this.#drainGraceMs : 0, until);
    } finally {
      if (drains) svc.draining--;
      svc.replicas = svc.replicas.filter((r) => r !== replica);
      await this.#runtimeFor(svc.spec)
        .release(svc.spec.name, replica.id)
        .catch(() => undefined);
      await svc.sync().catch(() => undefined);
      this.#kick(svc);
    }
  }

  #status(svc: ServiceState, live: Replica[]): { status: ServiceStatus; healthy: number } {
    const healthy = live.filter((r) => r.status === 'healthy').length;
    if (svc.terminating) return { status: 'TERMINATING', healthy };
    const desired = this.#desired(svc);
    if (desired === 0 && svc.autoscaler && live.length === 0) return { status: 'IDLE', healthy };
    if (healthy >= desired) return { status: 'HEALTHY', healthy };
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
      replicas: this.#desired(svc),
      healthy_replicas: healthy,
      public: spec.public,
      model_folder: spec.model_folder,
      model_definition_path: svc.loaded?.file ?? spec.model_definition_path ?? null,
      model_mount_destination: spec.model_mount_destination ?? DEFAULT_MOUNT_DESTINATION,
      model_name: svc.loaded?.model.name ?? null,
      env: spec.env,
      resources,
      resources_enforced: enforced,
      runtime: spec.runtime ?? 'process',
      image: spec.image ?? null,
      model_volume: spec.model_volume ?? null,
      error: svc.definitionError ?? null,
      created_at: spec.created_at,
      routes: svc.replicas.map((r) => r.view(logLines, this.#routeHost(r))),
    };
    if (this.#endpointUrl) view.url = this.#endpointUrl(spec.name);
    if (svc.autoscaler && spec.autoscaling) {
      view.autoscaling = {
        ...spec.autoscaling,
        status: { desired: svc.autoscaler.desired, current: live.length, panicking: svc.autoscaler.panicking, last_decision: svc.autoscaler.lastDecision },
      };
    }
    return view;
  }
}

function parsePublished(raw: unknown): PublishedStatus | null {
  if (!raw || typeof raw !== 'object') return null;
  const p = raw as Partial<PublishedStatus>;
  if (!p.view || typeof p.generation !== 'number' || typeof p.roll_key !== 'string' || !p.refs || typeof p.refs !== 'object') return null;
  return p as PublishedStatus;
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
