import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../obs/logger.js';
import type { ReplicaResources } from './runtime.js';

/**
 * Resource limits for local replicas through cgroup v2, where the machine allows it (a
 * writable unified hierarchy with the memory/cpu controllers delegated to us). Elsewhere the
 * limits are only recorded, and a warning is logged once. The process is moved into its group
 * right after spawn: anything it forks later inherits the group; the few instructions it runs
 * before the move are not limited.
 */
export class CgroupLimiter {
  readonly #root: string;
  readonly #logger: Logger;
  #available: Promise<{ memory: boolean; cpu: boolean }> | undefined;
  #warned = false;

  constructor(logger: Logger, root = '/sys/fs/cgroup') {
    this.#logger = logger;
    this.#root = root;
  }

  #probe(): Promise<{ memory: boolean; cpu: boolean }> {
    this.#available ??= (async () => {
      try {
        const controllers = (await readFile(join(this.#root, 'cgroup.controllers'), 'utf8')).split(/\s+/);
        await access(this.#root, constants.W_OK);
        const base = join(this.#root, 'modelgate');
        await mkdir(base, { recursive: true });
        const wanted = ['memory', 'cpu'].filter((c) => controllers.includes(c));
        for (const c of wanted) await writeFile(join(this.#root, 'cgroup.subtree_control'), `+${c}`).catch(() => undefined);
        await writeFile(join(base, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' ')).catch(() => undefined);
        const enabled = (await readFile(join(base, 'cgroup.subtree_control'), 'utf8').catch(() => '')).split(/\s+/);
        return { memory: enabled.includes('memory'), cpu: enabled.includes('cpu') };
      } catch {
        return { memory: false, cpu: false };
      }
    })();
    return this.#available;
  }

  /** Puts `pid` into a group with the limits; returns what was actually enforced. */
  async apply(groupName: string, pid: number, resources: ReplicaResources | undefined): Promise<{ memory: boolean; cpu: boolean }> {
    const none = { memory: false, cpu: false };
    if (!resources || (resources.memory_bytes === undefined && resources.cpu === undefined)) return none;
    const available = await this.#probe();
    const want = { memory: resources.memory_bytes !== undefined, cpu: resources.cpu !== undefined };
    if ((want.memory && !available.memory) || (want.cpu && !available.cpu)) this.#warnOnce();
    const use = { memory: want.memory && available.memory, cpu: want.cpu && available.cpu };
    if (!use.memory && !use.cpu) return none;
    const dir = join(this.#root, 'modelgate', groupName);
    try {
      await mkdir(dir, { recursive: true });
      if (use.memory) await writeFile(join(dir, 'memory.max'), String(resources.memory_bytes));
      if (use.cpu) await writeFile(join(dir, 'cpu.max'), `${Math.max(1000, Math.round(resources.cpu! * 100_000))} 100000`);
      await writeFile(join(dir, 'cgroup.procs'), String(pid));
      return use;
    } catch (err) {
      this.#logger.warn({ err, group: groupName }, 'could not apply cgroup limits; resources are recorded but not enforced');
      return none;
    }
  }

  async remove(groupName: string): Promise<void> {
    await rmdir(join(this.#root, 'modelgate', groupName)).catch(() => undefined);
  }

  #warnOnce(): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#logger.warn(
      { cgroup_root: this.#root },
      'cgroup v2 with delegated memory/cpu controllers is not writable here: service resources are recorded but not enforced',
    );
  }
}
