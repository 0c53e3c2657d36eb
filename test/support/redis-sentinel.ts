import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { assertInstalled, freePort, launchRedisProcess } from './redis-server.js';
import { eventually } from './eventually.js';

/**
 * A real Redis high-availability set for tests: one master, one replica and three
 * `redis-server --sentinel` processes watching them, all on free loopback ports. Sentinel
 * rewrites its config file, so each gets its own in a temp folder removed by stop().
 */
export interface SentinelSet {
  masterName: string;
  /** `redis+sentinel://127.0.0.1:S1,…/mymaster` */
  url: string;
  /** Port of the server that is master now, as the sentinels see it. */
  currentMasterPort(): Promise<number>;
  /** SIGKILLs the process listening on `port` (master or replica). */
  kill(port: number): Promise<void>;
  stop(): Promise<void>;
}

const MASTER_NAME = 'mymaster';

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
}

export async function startSentinelSet(): Promise<SentinelSet> {
  assertInstalled();
  const dir = mkdtempSync(join(tmpdir(), 'mg-sentinel-'));
  const processes = new Map<number, ChildProcess>();
  const launch = async (args: string[], configFile?: string): Promise<number> => {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      try {
        processes.set(port, await launchRedisProcess(port, args, configFile));
        return port;
      } catch (err) {
        if (attempt >= 5) throw err;
      }
    }
  };
  const stop = async () => {
    const all = [...processes.values()];
    processes.clear();
    for (const child of all) child.kill('SIGKILL');
    await Promise.all(all.map(exited));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Without this the master waits 5 s for more replicas before its first (diskless) sync.
    // --dir: a replica's full sync writes dump.rdb there (never into the work tree).
    const masterPort = await launch(['--dir', dir, '--repl-diskless-sync-delay', '0']);
    const replicaPort = await launch(['--dir', dir, '--repl-diskless-sync-delay', '0', '--replicaof', '127.0.0.1', String(masterPort)]);
    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const file = join(dir, `sentinel-${i}.conf`);
      writeFileSync(
        file,
        [
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
          `sentinel failover-timeout ${MASTER_NAME} 5000`,
          `sentinel parallel-syncs ${MASTER_NAME} 1`,
          '',
        ].join('\n'),
      );
      sentinelPorts.push(await launch(['--sentinel'], file));
    }
    const ask = async <T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> => {
      const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        await r.connect();
        return await fn(r);
      } finally {
        r.disconnect();
      }
    };
    // Ready when the replica is in sync and every sentinel knows the replica and its peers,
    // so a failover can reach quorum.
    await eventually(async () => {
      const link = await ask(replicaPort, (r) => r.info('replication'));
      if (!link.includes('master_link_status:up')) throw new Error('replica not in sync yet');
      for (const port of sentinelPorts) {
        const master = (await ask(port, (r) => r.call('SENTINEL', 'master', MASTER_NAME))) as string[];
        const field = (name: string) => Number(master[master.indexOf(name) + 1]);
        if (field('num-slaves') < 1 || field('num-other-sentinels') < 2) throw new Error(`sentinel ${port} not ready`);
      }
      return true;
    }, { timeoutMs: 20_000 });
    return {
      masterName: MASTER_NAME,
      url: `redis+sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${MASTER_NAME}`,
      async currentMasterPort() {
        const [, port] = (await ask(sentinelPorts[0], (r) => r.call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME))) as [string, string];
        return Number(port);
      },
      async kill(port: number) {
        const child = processes.get(port);
        if (!child) return;
        processes.delete(port);
        child.kill('SIGKILL');
        await exited(child);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
