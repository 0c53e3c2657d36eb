import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, readdir, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../obs/logger.js';
import { ArgumentMapper, replacePort } from './arguments.js';
import { CgroupLimiter } from './cgroup.js';
import { lineSplitter } from './log-ring.js';
import { createOverlay } from './model-overlay.js';
import { PortAllocator } from './port-allocator.js';
import { runPreStartActions } from './pre-start-actions.js';
import { ReplicaStartError, type ExitInfo, type ReplicaHandle, type ReplicaRuntime, type ReplicaSpec } from './runtime.js';

/**
 * Replicas as local processes. Each replica gets a port from the controller's range and a
 * directory `<workDir>/<service>/<replica>/` holding `home/` (what /home/work maps to, the
 * process's cwd and HOME), `model/` (the model_path overlay, see model-overlay.ts) and `tmp/`.
 * The process leads its own process group, so stopping it stops everything it forked.
 */

/** What a model process inherits from the gateway: enough to find binaries, never its secrets. */
const INHERITED_ENV = ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'USER', 'LOGNAME', 'SSL_CERT_FILE', 'SSL_CERT_DIR'];

export function defaultBaseEnv(): Record<string, string> {
  // The one read of process.env outside config/: a child needs PATH, and copying the whole
  // environment would hand ADMIN_TOKEN/TOKEN_SECRET to model code.
  const env: Record<string, string> = {};
  for (const name of INHERITED_ENV) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  return env;
}

export interface ProcessRuntimeOptions {
  /** Base of the replicas' working directories. */
  workDir: string;
  /** CONTROLLER_PORT_RANGE, e.g. "20000-29999". */
  portRange: string;
  logger: Logger;
  baseEnv?: Record<string, string>;
  /** null disables cgroup limits (tests); default probes /sys/fs/cgroup. */
  cgroup?: CgroupLimiter | null;
}

const PID_FILE = 'replica.pid';

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

async function processStartTime(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime), counted after the parenthesised command name, which may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function describeExit(exit: ExitInfo): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

export class ProcessRuntime implements ReplicaRuntime {
  readonly #workDir: string;
  readonly #ports: PortAllocator;
  readonly #logger: Logger;
  readonly #baseEnv: Record<string, string>;
  readonly #cgroup: CgroupLimiter | null;

  constructor(opts: ProcessRuntimeOptions) {
    this.#workDir = opts.workDir;
    this.#ports = new PortAllocator(opts.portRange);
    this.#logger = opts.logger;
    this.#baseEnv = opts.baseEnv ?? defaultBaseEnv();
    this.#cgroup = opts.cgroup === undefined ? new CgroupLimiter(opts.logger) : opts.cgroup;
  }

  #replicaDir(serviceName: string, replicaId: string): string {
    return join(this.#workDir, serviceName, replicaId);
  }

  async start(spec: ReplicaSpec): Promise<ReplicaHandle> {
    let port: number;
    try {
      port = await this.#ports.allocate(spec.preferredPort);
    } catch (err) {
      throw new ReplicaStartError((err as Error).message);
    }
    try {
      return await this.#startOnPort(spec, port);
    } catch (err) {
      this.#ports.release(port);
      if (err instanceof ReplicaStartError) throw err;
      throw new ReplicaStartError((err as Error).message, { cause: err });
    }
  }

  /** The steps of one start, in order; each throws ReplicaStartError with what went wrong. */
  async #startOnPort(spec: ReplicaSpec, port: number): Promise<ReplicaHandle> {
    const dirs = await prepareReplicaDirs(this.#replicaDir(spec.serviceName, spec.replicaId), spec.modelFolder);
    const mapper = new ArgumentMapper(
      { [spec.model.model_path]: dirs.model, '/home/work': dirs.home },
      { model_path: dirs.model, port: String(port), home: dirs.home },
    );
    const env = this.#replicaEnv(spec, dirs, port);
    spec.log(`[controller] starting on port ${port} in ${dirs.root}`);
    await runActions(spec, mapper, dirs, env);

    const argv = startArgv(spec, mapper, port);
    spec.log(`[controller] exec ${argv.map((a) => JSON.stringify(a)).join(' ')}`);
    const child = await this.#spawnReplica(spec, argv, dirs.home, env);
    const pid = child.pid!;
    const exited = watchExit(child, pid, spec.log);

    const groupName = `${spec.serviceName}-${spec.replicaId}`;
    const enforced = await this.#confine(groupName, pid, spec);
    await recordPid(dirs.root, pid);
    const stop = this.#stopper(pid, exited, port, groupName);
    void exited.then(() => this.#ports.release(port));

    if (spec.signal.aborted) {
      await stop(0);
      throw new ReplicaStartError('cancelled');
    }
    return { host: '127.0.0.1', port, pid, exited, enforced, stop };
  }

  #replicaEnv(spec: ReplicaSpec, dirs: ReplicaDirs, port: number): Record<string, string> {
    return {
      ...this.#baseEnv,
      HOME: dirs.home,
      TMPDIR: dirs.tmp,
      ...spec.env,
      PORT: String(port),
      MODEL_PATH: dirs.model,
    };
  }

  async #spawnReplica(spec: ReplicaSpec, argv: string[], cwd: string, env: Record<string, string>): Promise<ChildProcess> {
    let { child, spawned } = await spawnDetached(argv, cwd, env);
    if (spawned && (spawned as NodeJS.ErrnoException).code === 'ENOENT' && argv[0] === 'python') {
      // The seed system's example says `python`; Debian-like machines often only have python3.
      spec.log('[controller] python not found on PATH; running python3');
      argv[0] = 'python3';
      ({ child, spawned } = await spawnDetached(argv, cwd, env));
    }
    // After the first one, later 'error' events (a failed kill) must not crash the gateway.
    child.on('error', (err) => this.#logger.warn({ err, service: spec.serviceName, replica: spec.replicaId }, 'replica process error'));
    if (spawned) {
      const code = (spawned as NodeJS.ErrnoException).code;
      throw new ReplicaStartError(code === 'ENOENT' ? `command not found: ${argv[0]} (ENOENT)` : `cannot start ${argv[0]}: ${spawned.message}`);
    }
    return child;
  }

  /** cgroup limits where the machine allows them; reports what is enforced. */
  async #confine(groupName: string, pid: number, spec: ReplicaSpec): Promise<ReplicaHandle['enforced']> {
    const none = { cpu: false, memory: false };
    if (!this.#cgroup) return none;
    return this.#cgroup.apply(groupName, pid, spec.resources).catch(() => none);
  }

  /** Polite signal to the whole group, SIGKILL after graceMs; frees the port and the cgroup. Idempotent. */
  #stopper(pid: number, exited: Promise<ExitInfo>, port: number, groupName: string): ReplicaHandle['stop'] {
    let stopping: Promise<void> | undefined;
    return (graceMs) => {
      stopping ??= (async () => {
        let done = false;
        void exited.then(() => (done = true));
        killGroup(pid, 'SIGTERM');
        await Promise.race([exited, sleep(graceMs)]);
        if (!done) {
          killGroup(pid, 'SIGKILL');
          await Promise.race([exited, sleep(5_000)]);
        }
        killGroup(pid, 'SIGKILL');
        this.#ports.release(port);
        await this.#cgroup?.remove(groupName);
      })();
      return stopping;
    };
  }

  async release(serviceName: string, replicaId: string): Promise<void> {
    const dir = this.#replicaDir(serviceName, replicaId);
    await killRecorded(dir);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }

  async releaseService(serviceName: string): Promise<void> {
    const dir = join(this.#workDir, serviceName);
    let entries: string[] = [];
    try {
      entries = await readdir(dir);
    } catch {
      return;
    }
    for (const entry of entries) await killRecorded(join(dir, entry));
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

interface ReplicaDirs {
  root: string;
  /** What /home/work maps to: the process's cwd and HOME. */
  home: string;
  /** The model_path overlay. */
  model: string;
  tmp: string;
}

/** Each attempt starts from a clean directory: pre-start actions run again from scratch. */
async function prepareReplicaDirs(root: string, modelFolder: string): Promise<ReplicaDirs> {
  const dirs = { root, home: join(root, 'home'), model: join(root, 'model'), tmp: join(root, 'tmp') };
  await rm(root, { recursive: true, force: true });
  await mkdir(dirs.home, { recursive: true });
  await mkdir(dirs.tmp, { recursive: true });
  try {
    await createOverlay(modelFolder, dirs.model);
  } catch (err) {
    throw new ReplicaStartError(`cannot map model folder ${modelFolder}: ${(err as Error).message}`);
  }
  return dirs;
}

async function runActions(spec: ReplicaSpec, mapper: ArgumentMapper, dirs: ReplicaDirs, env: Record<string, string>): Promise<void> {
  try {
    await runPreStartActions(spec.model.service.pre_start_actions, {
      mapper,
      cwd: dirs.home,
      tmpDir: dirs.tmp,
      overlayDir: dirs.model,
      env,
      log: spec.log,
      signal: spec.signal,
    });
  } catch (err) {
    throw new ReplicaStartError((err as Error).message);
  }
  if (spec.signal.aborted) throw new ReplicaStartError('cancelled');
}

/** The service's start command with the definition's port replaced and container paths mapped. */
function startArgv(spec: ReplicaSpec, mapper: ArgumentMapper, port: number): string[] {
  const service = spec.model.service;
  return Array.isArray(service.start_command)
    ? service.start_command.map((arg) => mapper.map(replacePort(arg, service.port, port)))
    : [service.shell, '-c', mapper.map(replacePort(service.start_command, service.port, port))];
}

/** Forwards the output line by line; resolves on exit, after killing what the leader left in its group. */
function watchExit(child: ChildProcess, pid: number, log: (line: string) => void): Promise<ExitInfo> {
  const out = lineSplitter(log);
  const err = lineSplitter(log);
  child.stdout!.on('data', (chunk: Buffer) => out.write(chunk));
  child.stderr!.on('data', (chunk: Buffer) => err.write(chunk));
  child.stdout!.on('error', () => undefined);
  child.stderr!.on('error', () => undefined);
  return new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      out.end();
      err.end();
      // Whatever the leader left behind in its group (a shell's children) dies with it,
      // or an orphan would keep the replica's port.
      killGroup(pid, 'SIGKILL');
      log(`[controller] process ${pid} exited with ${describeExit({ code, signal })}`);
      resolve({ code, signal });
    });
  });
}

/** pid and start time, so a later gateway can kill a replica this one left behind (killRecorded). */
async function recordPid(replicaDir: string, pid: number): Promise<void> {
  const startTime = await processStartTime(pid);
  await writeFile(join(replicaDir, PID_FILE), JSON.stringify({ pid, start_time: startTime })).catch(() => undefined);
}

/**
 * Kills a replica left running by a gateway that died without stopping it (SIGKILL of the
 * gateway leaves detached groups alive). The recorded start time guards against a reused pid.
 */
async function killRecorded(replicaDir: string): Promise<void> {
  let recorded: { pid?: number; start_time?: string | null };
  try {
    recorded = JSON.parse(await readFile(join(replicaDir, PID_FILE), 'utf8')) as typeof recorded;
  } catch {
    return;
  }
  if (typeof recorded.pid !== 'number' || !recorded.start_time) return;
  if ((await processStartTime(recorded.pid)) === recorded.start_time) killGroup(recorded.pid, 'SIGKILL');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Spawns a replica in its own process group; resolves once it started or failed to. */
async function spawnDetached(argv: string[], cwd: string, env: Record<string, string>): Promise<{ child: ChildProcess; spawned: Error | null }> {
  const child = spawn(argv[0], argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const spawned = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (err) => resolve(err));
  });
  return { child, spawned };
}
