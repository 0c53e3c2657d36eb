import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { chown, lchown, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../obs/logger.js';
import { ArgumentMapper, replacePort } from './arguments.js';
import { CgroupLimiter } from './cgroup.js';
import { FileTail } from './file-tail.js';
import { createOverlay } from './model-overlay.js';
import { DEFAULT_MOUNT_DESTINATION } from './service-spec.js';
import { PortAllocator } from './port-allocator.js';
import { runPreStartActions } from './pre-start-actions.js';
import type { RunAs } from './run-as.js';
import { ReplicaStartError, type ExitInfo, type ReplicaHandle, type ReplicaRef, type ReplicaRuntime, type ReplicaSpec } from './runtime.js';
import { TRAVERSE_ONLY } from './work-dir.js';

/**
 * Replicas as local processes. Each replica gets a port from the controller's range and, per
 * start attempt, a fresh directory `<workDir>/<service>/<replica>/<random>/` holding `home/`
 * (what /home/work maps to, the process's cwd and HOME), `model/` (the model_path overlay, see
 * model-overlay.ts) and `tmp/`. The process leads its own process group, so stopping it stops
 * everything it forked.
 *
 * With CONTROLLER_RUN_AS the attempt directory belongs to the replica user (0700) while
 * everything above it, and the pid file, stays the gateway's (0711: passable, not listable or
 * writable). The random name keeps another replica of the same user from planting symlinks in
 * a directory the gateway is about to write pre-start files into.
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
  /** CONTROLLER_RUN_AS, resolved: replicas and their pre-start commands run as this user. */
  runAs?: RunAs | null;
}

const PID_FILE = 'replica.pid';
/** The replica's stdout and stderr (a file, not a pipe: see file-tail.ts), beside the pid file. */
const OUTPUT_FILE = 'output.log';
/** How often an adopted replica (not our child: no exit event) is checked for being alive. */
const ADOPTED_POLL_MS = 500;

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
  readonly name = 'process' as const;
  readonly #workDir: string;
  readonly #ports: PortAllocator;
  readonly #logger: Logger;
  readonly #baseEnv: Record<string, string>;
  readonly #cgroup: CgroupLimiter | null;
  readonly #runAs: RunAs | null;

  constructor(opts: ProcessRuntimeOptions) {
    this.#runAs = opts.runAs ?? null;
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
    const dirs = await this.#prepareDirs(spec);
    const mapper = replicaMapper(spec, dirs, port);
    const env = this.#replicaEnv(spec, dirs, port);
    spec.log(`[controller] starting on port ${port} in ${dirs.attempt}`);
    await this.#runActions(spec, mapper, dirs, env);

    const argv = startArgv(spec, mapper, port);
    spec.log(`[controller] exec ${argv.map((a) => JSON.stringify(a)).join(' ')}`);
    const outputFile = join(dirs.replica, OUTPUT_FILE);
    const child = await this.#spawnReplica(spec, argv, dirs.home, env, outputFile);
    const pid = child.pid!;
    const exited = watchExit(child, pid, spec.log, new FileTail(outputFile, spec.log));

    const groupName = `${spec.serviceName}-${spec.replicaId}`;
    const enforced = await this.#confine(groupName, pid, spec);
    const startTime = await recordPid(dirs.replica, pid);
    const ref: ReplicaRef = { runtime: 'process', node: hostname(), host: '127.0.0.1', port, pid, start_time: startTime ?? undefined };
    const stop = this.#stopper(pid, exited, port, groupName);
    void exited.then(() => this.#ports.release(port));

    if (spec.signal.aborted) {
      await stop(0);
      throw new ReplicaStartError('cancelled');
    }
    return { ref, host: '127.0.0.1', port, pid, exited, enforced, stop };
  }

  async adopt(spec: ReplicaSpec, ref: ReplicaRef): Promise<ReplicaHandle | null> {
    if (ref.runtime !== 'process' || ref.pid === undefined || !ref.start_time || ref.node !== hostname()) return null;
    const pid = ref.pid;
    if ((await processStartTime(pid)) !== ref.start_time) return null;
    try {
      await this.#ports.allocate(ref.port);
    } catch {
      // the allocator only knows this instance's ports; the replica holds its own anyway
    }
    const outputFile = join(this.#replicaDir(spec.serviceName, spec.replicaId), OUTPUT_FILE);
    const size = await stat(outputFile).then((s) => s.size, () => 0);
    const tail = new FileTail(outputFile, spec.log, { fromEnd: size });
    spec.log(`[controller] adopted process ${pid} on port ${ref.port}`);
    const exited = new Promise<ExitInfo>((resolve) => {
      // Not our child: no exit event, and no exit status to learn. Watch for it to go.
      const timer = setInterval(() => {
        void processStartTime(pid).then(async (now) => {
          if (now === ref.start_time) return;
          clearInterval(timer);
          killGroup(pid, 'SIGKILL');
          await tail.close();
          spec.log(`[controller] adopted process ${pid} is gone`);
          resolve({ code: null, signal: null });
        });
      }, ADOPTED_POLL_MS);
      timer.unref();
    });
    const groupName = `${spec.serviceName}-${spec.replicaId}`;
    const stop = this.#stopper(pid, exited, ref.port, groupName);
    void exited.then(() => this.#ports.release(ref.port));
    return { ref, host: ref.host, port: ref.port, pid, exited, enforced: { cpu: false, memory: false }, stop };
  }

  /** Each attempt starts from a clean, freshly named directory: pre-start actions run again from scratch. */
  async #prepareDirs(spec: ReplicaSpec): Promise<ReplicaDirs> {
    const replica = this.#replicaDir(spec.serviceName, spec.replicaId);
    await rm(replica, { recursive: true, force: true });
    await mkdir(join(this.#workDir, spec.serviceName), { recursive: true, mode: TRAVERSE_ONLY });
    await mkdir(replica, { mode: TRAVERSE_ONLY });
    const attempt = join(replica, randomBytes(9).toString('base64url'));
    const dirs = { replica, attempt, home: join(attempt, 'home'), model: join(attempt, 'model'), tmp: join(attempt, 'tmp') };
    await mkdir(attempt, { mode: 0o700 });
    await mkdir(dirs.home);
    await mkdir(dirs.tmp);
    try {
      await createOverlay(spec.modelFolder, dirs.model);
    } catch (err) {
      throw new ReplicaStartError(`cannot map model folder ${spec.modelFolder}: ${(err as Error).message}`);
    }
    const runAs = this.#runAs;
    if (runAs) {
      for (const d of [attempt, dirs.home, dirs.tmp, dirs.model]) await chown(d, runAs.uid, runAs.gid);
    }
    return dirs;
  }

  #replicaEnv(spec: ReplicaSpec, dirs: ReplicaDirs, port: number): Record<string, string> {
    const runAs = this.#runAs;
    return {
      ...this.#baseEnv,
      ...(runAs ? { USER: runAs.name, LOGNAME: runAs.name } : {}),
      HOME: dirs.home,
      TMPDIR: dirs.tmp,
      ...spec.env,
      PORT: String(port),
      MODEL_PATH: dirs.model,
    };
  }

  async #runActions(spec: ReplicaSpec, mapper: ArgumentMapper, dirs: ReplicaDirs, env: Record<string, string>): Promise<void> {
    const runAs = this.#runAs;
    try {
      await runPreStartActions(spec.model.service.pre_start_actions, {
        mapper,
        cwd: dirs.home,
        tmpDir: dirs.tmp,
        overlayDir: dirs.model,
        env,
        log: spec.log,
        signal: spec.signal,
        runAs,
        // Files the gateway writes for a replica of another user stay in that replica's directory.
        confineTo: runAs ? dirs.attempt : undefined,
      });
      // What the gateway wrote or copied up for the replica becomes the replica user's.
      if (runAs) await chownTree(dirs.attempt, runAs);
    } catch (err) {
      throw new ReplicaStartError((err as Error).message);
    }
    if (spec.signal.aborted) throw new ReplicaStartError('cancelled');
  }

  async #spawnReplica(spec: ReplicaSpec, argv: string[], cwd: string, env: Record<string, string>, outputFile: string): Promise<ChildProcess> {
    const runAs = this.#runAs;
    let { child, spawned } = await spawnDetached(argv, cwd, env, runAs, outputFile);
    if (spawned && (spawned as NodeJS.ErrnoException).code === 'ENOENT' && argv[0] === 'python') {
      // The seed system's example says `python`; Debian-like machines often only have python3.
      spec.log('[controller] python not found on PATH; running python3');
      argv[0] = 'python3';
      ({ child, spawned } = await spawnDetached(argv, cwd, env, runAs, outputFile));
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

  async releaseService(serviceName: string, keep?: ReadonlySet<string>): Promise<void> {
    const dir = join(this.#workDir, serviceName);
    let entries: string[] = [];
    try {
      entries = await readdir(dir);
    } catch {
      return;
    }
    if (keep && keep.size > 0) {
      for (const entry of entries) if (!keep.has(entry)) await this.release(serviceName, entry);
      return;
    }
    for (const entry of entries) await killRecorded(join(dir, entry));
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

interface ReplicaDirs {
  /** `<workDir>/<service>/<replica>/`: holds the pid record and one attempt. */
  replica: string;
  /** This attempt's freshly named directory. */
  attempt: string;
  /** What /home/work maps to: the process's cwd and HOME. */
  home: string;
  /** The model_path overlay. */
  model: string;
  tmp: string;
}

/** Container paths (the mount destination, model_path, /home/work) to this attempt's folders. */
function replicaMapper(spec: ReplicaSpec, dirs: ReplicaDirs, port: number): ArgumentMapper {
  // The mount destination (seed: "Model Destination For Model Folder") is the model folder too.
  const paths: Record<string, string> = {
    [spec.mountDestination ?? DEFAULT_MOUNT_DESTINATION]: dirs.model,
    [spec.model.model_path]: dirs.model,
    '/home/work': dirs.home,
  };
  return new ArgumentMapper(paths, { model_path: dirs.model, port: String(port), home: dirs.home });
}

/** The service's start command with the definition's port replaced and container paths mapped. */
function startArgv(spec: ReplicaSpec, mapper: ArgumentMapper, port: number): string[] {
  const service = spec.model.service;
  return Array.isArray(service.start_command)
    ? service.start_command.map((arg) => mapper.map(replacePort(arg, service.port, port)))
    : [service.shell, '-c', mapper.map(replacePort(service.start_command, service.port, port))];
}

/** Resolves on exit (after the output file's last lines), after killing what the leader left in its group. */
function watchExit(child: ChildProcess, pid: number, log: (line: string) => void, tail: FileTail): Promise<ExitInfo> {
  return new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      // Whatever the leader left behind in its group (a shell's children) dies with it,
      // or an orphan would keep the replica's port.
      killGroup(pid, 'SIGKILL');
      void tail.close().then(() => {
        log(`[controller] process ${pid} exited with ${describeExit({ code, signal })}`);
        resolve({ code, signal });
      });
    });
  });
}

/**
 * pid and start time, so a later gateway can kill a replica this one left behind (killRecorded).
 * Beside the attempt directory, not in it: a replica user must not be able to point the
 * gateway's clean-up kill at another process.
 */
async function recordPid(replicaDir: string, pid: number): Promise<string | null> {
  const startTime = await processStartTime(pid);
  await writeFile(join(replicaDir, PID_FILE), JSON.stringify({ pid, start_time: startTime }), { mode: 0o600 }).catch(() => undefined);
  return startTime;
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

/** lchown of everything under `root`, never following a symlink (the overlay's point into the user's folder). */
async function chownTree(root: string, runAs: RunAs): Promise<void> {
  await lchown(root, runAs.uid, runAs.gid);
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const path = join(root, entry.name);
    if (entry.isDirectory()) await chownTree(path, runAs);
    else await lchown(path, runAs.uid, runAs.gid);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Spawns a replica in its own process group; resolves once it started or failed to. */
async function spawnDetached(argv: string[], cwd: string, env: Record<string, string>, runAs: RunAs | null, outputFile: string): Promise<{ child: ChildProcess; spawned: Error | null }> {
  // With uid/gid, libuv also drops the gateway's supplementary groups (setgroups(0)).
  const ids = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
  // The gateway opens the file and hands the replica only the descriptor.
  const fd = openSync(outputFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(argv[0], argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', fd, fd], ...ids });
  } finally {
    closeSync(fd);
  }
  const spawned = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (err) => resolve(err));
  });
  return { child, spawned };
}
