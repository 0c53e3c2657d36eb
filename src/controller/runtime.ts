import type { ModelEntry } from './model-definition.js';

/**
 * Where replicas run. The controller only speaks this interface, so a container runtime can
 * replace local processes later: start one replica of a model (pre-start actions included,
 * since they belong to the replica's filesystem), report its address, exit and output, stop it.
 */

export interface ReplicaResources {
  /** CPU cores (fractional allowed). */
  cpu?: number;
  memory_bytes?: number;
  gpu?: number;
  shared_memory_bytes?: number;
}

/** What only a container runtime uses (service fields `image`, `model_volume`). */
export interface ContainerSpec {
  image: string;
  modelVolume?: { claim: string; sub_path?: string; read_only?: boolean } | { host_path: string };
}

export interface ReplicaSpec {
  serviceName: string;
  /** The route id; stable across restarts of the same replica. */
  replicaId: string;
  /** Real folder holding the model definition and files (the definition's model_path maps to it). */
  modelFolder: string;
  /** Another absolute path mapped to the model folder, besides the definition's model_path (default /models). */
  mountDestination?: string;
  model: ModelEntry;
  /** The service's extra environment. */
  env: Record<string, string>;
  resources?: ReplicaResources;
  container?: ContainerSpec;
  /** Port to try first (a restarted replica keeps its address when it can). */
  preferredPort?: number;
  /** Every output line of the replica and of its pre-start actions. */
  log: (line: string) => void;
  /** Aborting cancels a start in progress (running actions and a spawned process are killed). */
  signal: AbortSignal;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Where a replica runs, as the leader publishes it in the store: enough for a new leader to find
 * the replica again (adoption) and for the API to show it.
 */
export interface ReplicaRef {
  runtime: 'process' | 'kubernetes';
  /** Machine (process runtime: this host's name) or Kubernetes node running the replica. */
  node: string | null;
  /** Address the replica listens on (process: loopback; kubernetes: the Pod IP). */
  host: string;
  port: number;
  pid?: number;
  /** /proc start time of `pid`, so a reused pid is never mistaken for the replica. */
  start_time?: string;
  pod?: string;
}

export interface ReplicaHandle {
  readonly ref: ReplicaRef;
  readonly host: string;
  readonly port: number;
  readonly pid: number | undefined;
  /** Resolves once the replica's main process has exited; never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** What the runtime could enforce of the requested resources. */
  readonly enforced: { cpu: boolean; memory: boolean };
  /** Stops the replica (whole process group / container): polite signal, then kill after graceMs. */
  stop(graceMs: number): Promise<void>;
}

/** A start that failed before the replica's process ran: bad action, missing command, no port. */
export class ReplicaStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReplicaStartError';
  }
}

export interface ReplicaRuntime {
  readonly name: ReplicaRef['runtime'];
  start(spec: ReplicaSpec): Promise<ReplicaHandle>;
  /**
   * Takes over a replica another controller started (leader failover), if it still runs as
   * recorded; null when it is gone. The caller probes its health before keeping it.
   */
  adopt(spec: ReplicaSpec, ref: ReplicaRef): Promise<ReplicaHandle | null>;
  /** Forgets a replica for good: its working files and reserved resources. */
  release(serviceName: string, replicaId: string): Promise<void>;
  /** Forgets everything of a service (also leftovers of a previous gateway run) but the replicas in `keep`. */
  releaseService(serviceName: string, keep?: ReadonlySet<string>): Promise<void>;
}
