#!/usr/bin/env node
import cluster from 'node:cluster';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { workerCount, onWorkerDrain, reportWorkerReady, waitForWorkerInit } from './cluster/workers.js';
import { startGateway, type RunningGateway } from './compose.js';
import { takeSecretEnv, type TakenSecrets } from './config/secret-env.js';
import { loadSettings, SettingsError, type Settings } from './config/settings.js';
import type { AccessLogSink } from './obs/access-log.js';
import { createAccessLogger, createLogger, type Logger } from './obs/logger.js';
import { createStore } from './store/create-store.js';
import { IpcStore } from './store/ipc-store.js';

/**
 * The process entry: the CLI, or a gateway process in its role (single, cluster primary or
 * worker; compose.ts starts it), and what ends the process: SIGTERM/SIGINT drain and exit 0, an
 * uncaught exception drains and exits 1.
 */

interface CliArgs {
  configFile?: string;
  ephemeral: boolean;
  help: boolean;
}

const USAGE = `modelgate — edge gateway for model serving

Usage:
  modelgate [--config FILE] [--ephemeral]   run the gateway (data plane + admin API)
  modelgate <command> ...                   admin CLI (see: modelgate help)

Options:
  --config FILE   YAML settings file (environment variables override it)
  --ephemeral     keep the embedded store in memory only (nothing written to DATA_DIR)
  -h, --help      this text
`;

function parseServerArgs(argv: string[]): CliArgs {
  const args: CliArgs = { ephemeral: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--config') args.configFile = argv[++i];
    else if (a.startsWith('--config=')) args.configFile = a.slice('--config='.length);
    else if (a === '--ephemeral') args.ephemeral = true;
    else if (a === '-h' || a === '--help') args.help = true;
    else throw new SettingsError(`unknown option ${a} (see --help)`);
  }
  if (args.configFile === '') throw new SettingsError('--config needs a file name');
  return args;
}

/** Drains, then exits (code 1 if the drain itself failed). */
function exitAfterShutdown(running: RunningGateway, logger: Logger, reason: string, code = 0): void {
  if (code !== 0) process.exitCode = code;
  void running.shutdown(reason).then(
    () => {
      logger.flush?.();
      process.exit();
    },
    (err) => {
      logger.error({ err }, 'error while draining');
      process.exit(1);
    },
  );
}

/**
 * A throw nobody caught leaves state we cannot trust: stop taking requests, let the ones in
 * flight finish (DRAIN_GRACE_MS), exit 1 so a supervisor restarts us. If even the drain hangs,
 * exit anyway.
 */
function exitOnUncaught(settings: Settings, logger: Logger, current: () => RunningGateway | null): void {
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception: draining, then exiting with code 1');
    const running = current();
    if (running === null) {
      logger.flush?.();
      process.exit(1);
    }
    setTimeout(() => process.exit(1), settings.DRAIN_GRACE_MS + 10_000).unref();
    exitAfterShutdown(running, logger, 'uncaughtException', 1);
  });
}

/** A cluster worker: secrets from the primary, the store over IPC (or its own Redis connections). */
async function runWorker(settings: Settings, logger: Logger, accessLogger: AccessLogSink): Promise<RunningGateway> {
  const init = await waitForWorkerInit();
  // REDIS_URL comes over IPC: the primary took it out of the environment its workers inherit.
  if (init.redisUrl) settings = Object.freeze({ ...settings, REDIS_URL: init.redisUrl });
  const store = settings.REDIS_URL ? createStore(settings, logger) : new IpcStore({ channel: process });
  const running = await startGateway(settings, logger, {
    role: 'worker',
    store,
    accessLogger,
    secrets: { adminToken: '', tokenSecret: init.tokenSecret, generated: { adminToken: false, tokenSecret: false } },
  });
  onWorkerDrain((reason) => exitAfterShutdown(running, logger, reason));
  reportWorkerReady(running.gatewayPort);
  return running;
}

/** A single process, or a cluster primary with WORKERS > 1. */
async function runServer(settings: Settings, logger: Logger, accessLogger: AccessLogSink): Promise<RunningGateway> {
  const workers = workerCount(settings.WORKERS);
  let running: RunningGateway;
  try {
    running = await startGateway(settings, logger, workers > 1 ? { role: 'primary', workers, accessLogger } : { accessLogger });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`modelgate: cannot start: ${message}\n`);
    logger.flush?.();
    process.exit(1);
  }
  process.once('SIGTERM', () => exitAfterShutdown(running, logger, 'SIGTERM'));
  process.once('SIGINT', () => exitAfterShutdown(running, logger, 'SIGINT'));
  return running;
}

/**
 * Settings from the command line and the environment; a bad one ends the process with code 2.
 * Secrets leave the environment (and /proc/<pid>/environ) first, before any child can be started.
 */
async function readSettings(argv: string[]): Promise<{ settings: Settings; hidden: TakenSecrets | null } | null> {
  try {
    const args = parseServerArgs(argv);
    if (args.help) {
      const { commandSummary } = await import('./cli/run.js');
      process.stdout.write(`${USAGE}\n${commandSummary()}`);
      return null;
    }
    const hidden = cluster.isWorker ? null : takeSecretEnv();
    const settings = loadSettings({ env: { ...process.env, ...hidden?.values }, configFile: args.configFile, ephemeral: args.ephemeral });
    return { settings, hidden };
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    process.stderr.write(`modelgate: ${err.message}\n`);
    process.exit(2);
  }
}

/**
 * V8 otherwise lets the old generation grow up to 4× what survived the last full collection
 * (on a machine with a large heap limit): after churning through cold endpoints a gateway sits
 * on well over 100 MB of dead route tables. A fixed, smaller growth collects them sooner, at
 * the cost of more (incremental, mostly concurrent) full collections while the hot set churns;
 * steady traffic promotes little and barely notices (docs/performance.md). V8 reads the flag
 * each time it sets the next limit, so setting it now, before the first full collection, is enough.
 */
function limitHeapGrowth(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}

async function main(argv: string[]): Promise<void> {
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-')) {
    const { runCli } = await import('./cli/run.js');
    process.exitCode = await runCli(argv);
    return;
  }
  const read = await readSettings(argv);
  if (read === null) return;
  const { settings, hidden } = read;
  limitHeapGrowth(settings.HEAP_GROWING_PERCENT);
  const logger = createLogger(settings.LOG_LEVEL);
  const accessLogger = createAccessLogger(settings.LOG_LEVEL);
  let running: RunningGateway | null = null;
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection (kept running)'));
  exitOnUncaught(settings, logger, () => running);
  if (hidden && !hidden.scrubbed) {
    logger.warn(
      { problem: hidden.problem, hint: 'set CONTROLLER_RUN_AS (docs/security.md)' },
      'could not hide ADMIN_TOKEN/TOKEN_SECRET/REDIS_URL from /proc/<pid>/environ: model processes running as this user can read them',
    );
  }
  running = cluster.isWorker ? await runWorker(settings, logger, accessLogger) : await runServer(settings, logger, accessLogger);
}

function isEntryPoint(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`modelgate: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
