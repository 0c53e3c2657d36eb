import type { RouteStatus } from '../schema/route-table.js';
import { waitUntilHealthy, watchHealth, type HealthOutcome } from './health-prober.js';
import { LogRing } from './log-ring.js';
import type { ModelEntry } from './model-definition.js';
import type { ContainerSpec, ExitInfo, ReplicaHandle, ReplicaRef, ReplicaResources, ReplicaRuntime } from './runtime.js';

/**
 * One replica ("route") of a service and its supervision loop: start, wait for the first
 * passing health check, watch, and on failure restart with exponential backoff. The route id
 * stays the same across restarts; the port too when it is still free.
 *
 * A replica that has never become healthy gets `startAttempts` tries (failed_to_start after
 * each, then it stays failed_to_start until "clear error and retry"); one that was healthy and
 * then exited or failed its checks is restarted for as long as the service lives, since that
 * is a crash to recover from rather than a definition that cannot work.
 */

export interface ReplicaPolicy {
  startAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A replica healthy this long starts its backoff over. */
  backoffResetMs: number;
  stopGraceMs: number;
}

export const DEFAULT_POLICY: ReplicaPolicy = {
  startAttempts: 3,
  backoffBaseMs: 1_000,
  backoffMaxMs: 60_000,
  backoffResetMs: 60_000,
  stopGraceMs: 5_000,
};

export interface ReplicaLaunch {
  serviceName: string;
  modelFolder: string;
  mountDestination?: string;
  model: ModelEntry;
  env: Record<string, string>;
  resources?: ReplicaResources;
  container?: ContainerSpec;
}

export interface ReplicaView {
  id: string;
  status: RouteStatus;
  /** Which runtime runs it: "process" or "kubernetes". */
  runtime: ReplicaRef['runtime'];
  /** Machine / Kubernetes node it runs on (null until placed). */
  node: string | null;
  /** Address the gateway routes to (null until started). */
  host: string | null;
  port: number | null;
  pid: number | null;
  restarts: number;
  last_error: string | null;
  generation: number;
  log_tail?: string[];
}

function describeExit(exit: ExitInfo): string {
  return exit.signal ? `process exited with signal ${exit.signal}` : `process exited with code ${exit.code}`;
}

export class Replica {
  readonly id: string;
  readonly generation: number;
  readonly log: LogRing;
  status: RouteStatus = 'provisioning';
  port: number | undefined;
  pid: number | undefined;
  restarts = 0;
  lastError: string | undefined;
  /** Failed since it was last healthy (for the service status). */
  failing = false;
  /** Out of start attempts: waits for "clear error and retry". */
  givenUp = false;
  /** Being drained/stopped by the controller. */
  retiring = false;
  enforced = { cpu: false, memory: false };
  /** Where it runs, once started (published for adoption by a later leader). */
  ref: ReplicaRef | undefined;

  readonly #runtime: ReplicaRuntime;
  readonly #launch: ReplicaLaunch;
  readonly #policy: ReplicaPolicy;
  readonly #onChange: (replica: Replica) => Promise<void>;
  readonly #abort = new AbortController();
  #handle: ReplicaHandle | undefined;
  /**
   * A running replica taken over from a previous leader: supervised without a start. `starting`:
   * it had not passed its health check yet, so it is waited for as a new start is.
   */
  #adopted: { handle: ReplicaHandle; starting: boolean } | undefined;
  /** Its process (or Pod) runs: started or adopted, and not stopped since. */
  #running = false;
  #loop: Promise<void> | undefined;
  #stopped = false;

  constructor(opts: {
    id: string;
    generation: number;
    runtime: ReplicaRuntime;
    launch: ReplicaLaunch;
    policy: ReplicaPolicy;
    /** Called on every status change; awaited, so "leaves the table" happens before the kill. */
    onChange: (replica: Replica) => Promise<void>;
    log?: LogRing;
    /** `starting`: published before its first passing health check; it keeps `provisioning`. */
    adopted?: { handle: ReplicaHandle; restarts: number; starting?: boolean };
  }) {
    this.id = opts.id;
    this.generation = opts.generation;
    this.#runtime = opts.runtime;
    this.#launch = opts.launch;
    this.#policy = opts.policy;
    this.#onChange = opts.onChange;
    this.log = opts.log ?? new LogRing(500);
    if (opts.adopted) {
      this.#adopted = { handle: opts.adopted.handle, starting: opts.adopted.starting === true };
      this.restarts = opts.adopted.restarts;
      this.#adoptHandle(opts.adopted.handle);
      this.status = this.#adopted.starting ? 'provisioning' : 'healthy';
    }
  }

  #adoptHandle(handle: ReplicaHandle): void {
    this.#handle = handle;
    this.port = handle.port;
    this.pid = handle.pid;
    this.enforced = handle.enforced;
    this.ref = handle.ref;
    this.#running = true;
  }

  async #stopHandle(handle: ReplicaHandle): Promise<void> {
    await handle.stop(this.#policy.stopGraceMs);
    this.pid = undefined;
    this.#running = false;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Its process runs (a later leader can adopt it), though it may not be healthy yet. */
  get running(): boolean {
    return this.#running;
  }

  start(): void {
    this.#loop ??= this.#run().catch((err: unknown) => {
      // The loop handles every expected failure itself; this is a bug guard so that a
      // replica can never take the gateway down.
      this.lastError = `internal error: ${(err as Error).message}`;
      this.status = 'failed_to_start';
      this.givenUp = true;
      this.failing = true;
      void this.#onChange(this).catch(() => undefined);
    });
  }

  async #set(status: RouteStatus, error?: string): Promise<void> {
    // Once retiring, the route stays `terminating` whatever the loop was about to report.
    if (this.retiring) return;
    this.status = status;
    if (error !== undefined) {
      this.lastError = error;
      this.log.push(`[controller] ${status}: ${error}`);
    }
    try {
      await this.#onChange(this);
    } catch {
      // table writes are retried by the controller's next sync
    }
  }

  async #run(): Promise<void> {
    let backoffMs = this.#policy.backoffBaseMs;
    let startFailures = 0;
    for (;;) {
      if (this.#stopped) return;
      const adopted = this.#adopted;
      this.#adopted = undefined;
      if (!adopted) await this.#set('provisioning');
      const outcome = await this.#attempt(adopted);
      if (this.#stopped || outcome.kind === 'stopped') return;
      this.failing = true;
      if (outcome.kind === 'start_failed') {
        startFailures++;
        this.givenUp = startFailures >= this.#policy.startAttempts;
        await this.#set('failed_to_start', outcome.error);
        if (this.givenUp) return;
      } else {
        startFailures = 0;
        if (outcome.healthyMs >= this.#policy.backoffResetMs) backoffMs = this.#policy.backoffBaseMs;
        await this.#set('unhealthy', outcome.error);
      }
      this.log.push(`[controller] restarting in ${backoffMs / 1000} s`);
      await abortableSleep(backoffMs, this.#abort.signal);
      backoffMs = Math.min(backoffMs * 2, this.#policy.backoffMaxMs);
      if (this.#stopped) return;
      this.restarts++;
    }
  }

  async #attempt(adopted?: { handle: ReplicaHandle; starting: boolean }): Promise<{ kind: 'start_failed'; error: string } | { kind: 'crashed'; error: string; healthyMs: number } | { kind: 'stopped' }> {
    const signal = this.#abort.signal;
    const check = this.#launch.model.service.health_check;
    let handle: ReplicaHandle;
    if (adopted) {
      // Probed by the adopting controller just before: healthy, or still starting (then waited
      // for below with a full health window, as a new start is).
      handle = adopted.handle;
    } else {
      try {
        handle = await this.#runtime.start({ ...this.#launch, replicaId: this.id, preferredPort: this.port, log: (line) => this.log.push(line), signal });
      } catch (err) {
        return this.#stopped ? { kind: 'stopped' } : { kind: 'start_failed', error: (err as Error).message };
      }
      this.#adoptHandle(handle);
      await this.#set('provisioning');
    }

    const first = adopted && !adopted.starting ? ({ kind: 'healthy' } as const) : await waitUntilHealthy(handle, check, signal);
    if (first.kind !== 'healthy') {
      await this.#stopHandle(handle);
      if (first.kind === 'aborted' || this.#stopped) return { kind: 'stopped' };
      return { kind: 'start_failed', error: this.#explain(first, true) };
    }
    const healthySince = Date.now();
    this.failing = false;
    await this.#set('healthy');
    this.log.push(`[controller] healthy on port ${handle.port}`);

    const down = await watchHealth(handle, check, signal);
    if (down.kind === 'aborted' || this.#stopped) return { kind: 'stopped' };
    // Out of the table first, then the kill: requests stop arriving before the process goes.
    await this.#set('unhealthy', this.#explain(down, false));
    await this.#stopHandle(handle);
    return { kind: 'crashed', error: this.#explain(down, false), healthyMs: Date.now() - healthySince };
  }

  #explain(outcome: HealthOutcome, starting: boolean): string {
    if (outcome.kind === 'exited') {
      const tail = this.log
        .tail(6)
        .filter((l) => !l.startsWith('[controller]'))
        .slice(-3)
        .join(' | ');
      return `${describeExit(outcome.exit)}${starting ? ' before becoming healthy' : ''}${tail ? `; last output: ${tail}` : ''}`;
    }
    if (outcome.kind === 'failed') return outcome.reason;
    return 'stopped';
  }

  /**
   * Stops supervision and the process. With `drainMs`, the route is first marked terminating
   * (weight 0) and left that long so requests in flight finish; with `until`, then longer while
   * requests are still reported on it.
   */
  async stop(drainMs = 0, until?: DrainUntil): Promise<void> {
    if (this.#stopped) {
      await this.#loop;
      return;
    }
    this.retiring = true;
    const wasHealthy = this.status === 'healthy';
    this.status = 'terminating';
    try {
      await this.#onChange(this);
    } catch {}
    if (drainMs > 0 && wasHealthy) {
      await sleep(drainMs);
      if (until) {
        // Past the grace, wait for the gateways to report the route's last request done.
        const deadline = Date.now() + until.maxMs;
        while (Date.now() < deadline && !(await until.drained().catch(() => true))) await sleep(250);
      }
    }
    this.#stopped = true;
    this.#abort.abort();
    await this.#loop;
    if (this.#handle) await this.#stopHandle(this.#handle);
  }

  /**
   * Leaves supervision without touching the process: this controller lost leadership and the
   * new leader adopts the replica.
   */
  abandon(): void {
    this.#stopped = true;
    this.retiring = true;
    this.#abort.abort();
  }

  view(logLines = 0, routeHost?: string): ReplicaView {
    const view: ReplicaView = {
      id: this.id,
      status: this.status,
      runtime: this.ref?.runtime ?? this.#runtime.name,
      node: this.ref?.node ?? null,
      host: this.ref ? (routeHost ?? this.ref.host) : null,
      port: this.port ?? null,
      pid: this.pid ?? null,
      restarts: this.restarts,
      last_error: this.lastError ?? null,
      generation: this.generation,
    };
    if (logLines > 0) view.log_tail = this.log.tail(logLines);
    return view;
  }
}

/** A drain that lasts until `drained()` says the route has no request left (at most maxMs more). */
export interface DrainUntil {
  drained: () => Promise<boolean>;
  maxMs: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
