#!/usr/bin/env node
import cluster from 'node:cluster';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import { createAuth } from './auth/create-auth.js';
import { CidrList } from './auth/cidr.js';
import { takeSecretEnv, type TakenSecrets } from './config/secret-env.js';
import { loadSettings, SettingsError, type Settings } from './config/settings.js';
import { listenAdmin } from './admin/admin-listener.js';
import { createAdminApp } from './admin/app.js';
import { CertificateStore, readCaFile } from './tls/certificates.js';
import type { AdminMount } from './admin/mount.js';
import { OwnAddresses } from './admin/own-addresses.js';
import { endpointsRoutes } from './admin/endpoints-routes.js';
import { servicesRoutes } from './admin/services-routes.js';
import { tokensRoutes } from './admin/tokens-routes.js';
import { usageRoutes } from './admin/usage-routes.js';
import { ServiceController } from './controller/service-controller.js';
import type { AccessLogSink } from './obs/access-log.js';
import { createAccessLogger, createLogger, type Logger } from './obs/logger.js';
import { Metrics } from './obs/metrics.js';
import { onWorkerDrain, reportWorkerReady, serveMetricsToPrimary, serveStatsToPrimary, waitForWorkerInit, WorkerPool, workerCount } from './cluster/workers.js';
import { collectEndpointStats, mergeEndpointStats } from './obs/endpoint-stats.js';
import { consoleRoutes } from './admin/console-routes.js';
import { statsRoutes } from './admin/stats-routes.js';
import { GatewayServer } from './proxy/gateway-server.js';
import { createStore } from './store/create-store.js';
import { IpcStore } from './store/ipc-store.js';
import { resolveSecrets, type ResolvedSecrets } from './store/secrets.js';
import { isLeaseStore, type Store } from './store/store.js';
import { LeaseLeadership } from './controller/leadership.js';
import { KubernetesRuntime } from './controller/kubernetes-runtime.js';

/**
 * Composition root: settings → store → auth → data plane + admin API, and the drain on
 * SIGTERM/SIGINT. The only module that knows every other one.
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

export interface RunningGateway {
  settings: Settings;
  store: Store;
  /** This process's data plane; null in a cluster primary (its workers serve). */
  gateway: GatewayServer | null;
  adminToken: string;
  gatewayPort: number;
  adminPort: number;
  shutdown(signal?: string): Promise<void>;
}

/** How this process takes part (WORKERS): everything, a cluster primary, or a data-plane worker. */
export interface StartOptions {
  role?: 'single' | 'primary' | 'worker';
  /** Worker: the store client (IpcStore, or its own RedisStore). */
  store?: Store;
  /** Worker: the secrets resolved by the primary. */
  secrets?: ResolvedSecrets;
  /** Primary: number of data-plane workers to fork. */
  workers?: number;
  /** Where access-log lines go; default: `logger`. */
  accessLogger?: AccessLogSink;
}

/** Starts every component; used by the CLI entry and by tests that run a gateway in-process. */
export async function startGateway(settings: Settings, logger: Logger, opts: StartOptions = {}): Promise<RunningGateway> {
  const role = opts.role ?? 'single';
  const metrics = new Metrics();
  const secrets = opts.secrets ?? (await resolveSecrets(settings, logger));
  const store = opts.store ?? createStore(settings, logger);
  await store.start();
  metrics.storeUp.set(store.health().up ? 1 : 0);
  // The store logs each up/down transition itself (once per transition, never per request).
  store.onHealthChange((h) => metrics.storeUp.set(h.up ? 1 : 0));

  const auth = await createAuth({ settings, tokenSecret: secrets.tokenSecret, store, logger, metrics });
  await auth.checker.start();

  let gateway: GatewayServer | null = null;
  let pool: WorkerPool | null = null;
  let gatewayAddress: { port: number };
  let plainHttpUrl: string | undefined;
  if (role === 'primary') {
    // The workers serve the data plane on the shared port; the embedded store is served to them over IPC.
    pool = new WorkerPool({ count: opts.workers ?? 2, tokenSecret: secrets.tokenSecret, redisUrl: settings.REDIS_URL, store: store.kind === 'memory' ? store : null, logger });
    gatewayAddress = { port: await pool.start() };
  } else {
    const trusted = settings.TRUSTED_PROXIES.length > 0 ? CidrList.compile(settings.TRUSTED_PROXIES) : null;
    // OpenTelemetry is loaded only when a collector is configured: zero cost otherwise.
    const tracer = settings.OTEL_EXPORTER_OTLP_ENDPOINT
      ? (await import('./obs/otel.js')).createOtelTracer({ endpoint: settings.OTEL_EXPORTER_OTLP_ENDPOINT, serviceName: settings.OTEL_SERVICE_NAME })
      : undefined;
    gateway = new GatewayServer({
      settings,
      store,
      access: auth.checker,
      metrics,
      logger,
      accessLogger: opts.accessLogger,
      isTrustedProxy: trusted ? (address) => trusted.matches(address) : undefined,
      tracer,
      // Workers on the embedded store share caps and rate limits through the primary.
      limitsChannel: role === 'worker' && !settings.REDIS_URL ? process : undefined,
      certificates: dataPlaneCertificates(settings),
      upstreamCa: settings.UPSTREAM_CA_FILE ? readCaFile(settings.UPSTREAM_CA_FILE) : undefined,
    });
    gateway.start();
    gatewayAddress = await gateway.listen(settings.GATEWAY_PORT, settings.GATEWAY_HOST);
    if (settings.GATEWAY_HTTP_PORT !== undefined) {
      const plain = await gateway.listenPlain(settings.GATEWAY_HTTP_PORT, settings.GATEWAY_HOST, settings.HTTP_REDIRECT ? gatewayAddress.port : null);
      plainHttpUrl = `http://${settings.GATEWAY_HOST}:${plain.port}`;
    }
  }
  if (role === 'worker') {
    serveMetricsToPrimary(metrics.registry);
    serveStatsToPrimary((name) => collectEndpointStats(name, metrics, gateway));
  }
  if (role === 'worker') return dataPlaneOnly(settings, logger, store, secrets, gateway!, gatewayAddress.port, () => auth.checker.stop());

  // Routes back to these listeners are refused (a proxy loop); the admin port is added once bound.
  const ownAddresses = new OwnAddresses(settings.APPS_DOMAIN);
  ownAddresses.add(settings.GATEWAY_HOST, gatewayAddress.port);
  if (plainHttpUrl) ownAddresses.add(settings.GATEWAY_HOST, Number(new URL(plainHttpUrl).port));
  const scheme = settings.TLS_CERT_FILE ? 'https' : 'http';
  const portSuffix = gatewayAddress.port === (scheme === 'https' ? 443 : 80) ? '' : `:${gatewayAddress.port}`;
  const endpointUrl = (name: string) => `${scheme}://${name}.${settings.APPS_DOMAIN}${portSuffix}/`;
  // With a shared store one controller leads (a lease); the embedded store has one process.
  const leadership = isLeaseStore(store) ? new LeaseLeadership({ store, logger, ttlMs: settings.CONTROLLER_LEASE_MS }) : undefined;
  const kubernetes = () => new KubernetesRuntime({ namespace: settings.KUBERNETES_NAMESPACE, kubeconfig: settings.KUBECONFIG, logger });
  const controller = settings.CONTROLLER_ENABLED
    ? new ServiceController({ store, settings, logger, endpointUrl, metrics, leadership, kubernetes, defaultRuntime: settings.CONTROLLER_RUNTIME })
    : null;
  const mounts: AdminMount[] = [
    endpointsRoutes({
      store,
      endpointUrl,
      checkCidrs: auth.checkCidrs,
      ownAddress: (url) => ownAddresses.matches(url),
      // Deleting a service's endpoint also stops the service's processes.
      onDeleted: controller ? async (name) => void (await controller.terminate(name)) : undefined,
    }),
    tokensRoutes({ store, issuer: auth.issuer, maxLifetimeSeconds: auth.maxLifetimeSeconds, revocations: auth.revocations, clock: auth.clock }),
    usageRoutes({ store, flushUsage: gateway ? () => gateway!.traffic.flushUsage() : undefined }),
  ];
  if (controller) mounts.push(servicesRoutes(controller));
  mounts.push(
    consoleRoutes(),
    statsRoutes({
      store,
      // A cluster primary proxies nothing itself: its workers' numbers are summed.
      collect: pool
        ? async (name) => mergeEndpointStats(await pool!.collectEndpointStats(name), name)
        : (name) => collectEndpointStats(name, metrics, gateway),
    }),
  );
  const adminApp = createAdminApp(
    {
      adminToken: secrets.adminToken,
      bodyLimitBytes: settings.ADMIN_BODY_LIMIT_BYTES,
      logger,
      metrics,
      metricsText: pool
        ? async () => {
            // Counters and histograms are summed across the primary and every worker.
            const parts = [await metrics.registry.getMetricsAsJSON(), ...(await pool!.collectMetrics())];
            return AggregatorRegistry.aggregate(parts).metrics();
          }
        : undefined,
      metricsAuth: settings.ADMIN_METRICS_AUTH,
      // The detailed reason (it names the store's address) is for the admin listener only, never the public /readyz.
      health: () => {
        const h = store.health();
        return { store: store.kind, store_up: h.up, ...(h.up ? {} : { store_reason: h.reason }) };
      },
    },
    mounts,
  );
  const adminServer = await listenAdmin(adminApp, {
    host: settings.ADMIN_HOST,
    port: settings.ADMIN_PORT,
    allowedHosts: settings.ADMIN_ALLOWED_HOSTS,
    certificates: adminCertificates(settings),
    onCertificateError: (err) => logger.error({ err_message: err.message }, 'admin TLS certificate not reloaded; the previous one stays in use'),
  });
  const adminAddress = adminServer.address();
  if (controller) {
    // Restoring services starts processes; the gateway already serves while they come up.
    controller.start().catch((err) => logger.error({ err }, 'model-service controller failed to restore services'));
  }
  const adminPort = typeof adminAddress === 'object' && adminAddress ? adminAddress.port : settings.ADMIN_PORT;
  ownAddresses.add(settings.ADMIN_HOST, adminPort);

  if (secrets.generated.adminToken) {
    // Printed once, on stdout (not through the logger, which redacts it), so the operator can copy it.
    process.stdout.write(
      `\nmodelgate: generated ADMIN_TOKEN (saved ${settings.ephemeral ? 'nowhere: --ephemeral' : `in ${settings.DATA_DIR}/admin-token`}):\n  ${secrets.adminToken}\n\n`,
    );
  }
  logger.info(
    {
      gateway: `${scheme}://${settings.GATEWAY_HOST}:${gatewayAddress.port}`,
      admin: `${settings.ADMIN_TLS_CERT_FILE ? 'https' : 'http'}://${settings.ADMIN_HOST}:${adminPort}`,
      ...(plainHttpUrl ? { http: plainHttpUrl } : {}),
      store: store.kind,
      data_dir: store.kind === 'memory' ? (settings.ephemeral ? null : settings.DATA_DIR) : undefined,
      apps_domain: settings.APPS_DOMAIN,
    },
    store.kind === 'memory' && settings.ephemeral ? 'modelgate started (ephemeral: state is kept in memory only and lost on exit)' : 'modelgate started',
  );

  let stopping: Promise<void> | null = null;
  const shutdown = (signal?: string) => {
    stopping ??= (async () => {
      logger.info({ signal, in_flight: gateway?.inFlight, workers: pool?.size, grace_ms: settings.DRAIN_GRACE_MS }, 'draining');
      const adminClosed = new Promise<void>((resolve) => adminServer.close(() => resolve()));
      await (gateway ? gateway.drain(settings.DRAIN_GRACE_MS) : pool!.drain(settings.DRAIN_GRACE_MS));
      await controller?.stop();
      auth.checker.stop();
      (adminServer as { closeAllConnections?: () => void }).closeAllConnections?.();
      await adminClosed;
      await store.close();
      logger.info('stopped');
    })();
    return stopping;
  };

  return { settings, store, gateway, adminToken: secrets.adminToken, gatewayPort: gatewayAddress.port, adminPort, shutdown };
}

/** A cluster worker's RunningGateway: the data plane alone (no admin API, no controller). */
function dataPlaneOnly(
  settings: Settings,
  logger: Logger,
  store: Store,
  secrets: ResolvedSecrets,
  gateway: GatewayServer,
  gatewayPort: number,
  stopAuth: () => void,
): RunningGateway {
  let stopping: Promise<void> | null = null;
  const shutdown = (signal?: string) => {
    stopping ??= (async () => {
      logger.info({ signal, in_flight: gateway.inFlight, grace_ms: settings.DRAIN_GRACE_MS }, 'worker draining');
      await gateway.drain(settings.DRAIN_GRACE_MS);
      stopAuth();
      await store.close();
    })();
    return stopping;
  };
  return { settings, store, gateway, adminToken: secrets.adminToken, gatewayPort, adminPort: 0, shutdown };
}

/** TLS_CERT_FILE & co, read and checked now so a bad file stops start-up with one clear line. */
function dataPlaneCertificates(settings: Settings): CertificateStore | undefined {
  if (!settings.TLS_CERT_FILE || !settings.TLS_KEY_FILE) return undefined;
  return new CertificateStore({ certFile: settings.TLS_CERT_FILE, keyFile: settings.TLS_KEY_FILE, certsDir: settings.TLS_CERTS_DIR });
}

/** ADMIN_TLS_CERT_FILE/ADMIN_TLS_KEY_FILE: the admin listener speaks HTTPS, its pair reloaded on change. */
function adminCertificates(settings: Settings): CertificateStore | undefined {
  if (!settings.ADMIN_TLS_CERT_FILE || !settings.ADMIN_TLS_KEY_FILE) return undefined;
  return new CertificateStore({
    certFile: settings.ADMIN_TLS_CERT_FILE,
    keyFile: settings.ADMIN_TLS_KEY_FILE,
    certSetting: 'ADMIN_TLS_CERT_FILE',
    keySetting: 'ADMIN_TLS_KEY_FILE',
  });
}

/** Drains, then exits 0 (1 if the drain itself failed). */
function exitAfterShutdown(running: RunningGateway, logger: Logger, reason: string): void {
  void running.shutdown(reason).then(
    () => {
      logger.flush?.();
      process.exit(0);
    },
    (err) => {
      logger.error({ err }, 'error while draining');
      process.exit(1);
    },
  );
}

/** A cluster worker: secrets from the primary, the store over IPC (or its own Redis connections). */
async function runWorker(settings: Settings, logger: Logger, accessLogger: AccessLogSink): Promise<void> {
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
}

async function main(argv: string[]): Promise<void> {
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-')) {
    const { runCli } = await import('./cli/run.js');
    process.exitCode = await runCli(argv);
    return;
  }
  let settings: Settings;
  let args: CliArgs;
  let hidden: TakenSecrets | null = null;
  try {
    args = parseServerArgs(argv);
    if (args.help) {
      const { commandSummary } = await import('./cli/run.js');
      process.stdout.write(`${USAGE}\n${commandSummary()}`);
      return;
    }
    // Secrets leave the environment (and /proc/<pid>/environ) before any child can be started.
    hidden = cluster.isWorker ? null : takeSecretEnv();
    settings = loadSettings({ env: { ...process.env, ...hidden?.values }, configFile: args.configFile, ephemeral: args.ephemeral });
  } catch (err) {
    if (err instanceof SettingsError) {
      process.stderr.write(`modelgate: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(settings.LOG_LEVEL);
  const accessLogger = createAccessLogger(settings.LOG_LEVEL);
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection (kept running)'));
  process.on('uncaughtException', (err) => logger.error({ err }, 'uncaught exception (kept running)'));

  if (hidden && !hidden.scrubbed) {
    logger.warn(
      { problem: hidden.problem, hint: 'set CONTROLLER_RUN_AS (docs/security.md)' },
      'could not hide ADMIN_TOKEN/TOKEN_SECRET/REDIS_URL from /proc/<pid>/environ: model processes running as this user can read them',
    );
  }
  if (cluster.isWorker) {
    await runWorker(settings, logger, accessLogger);
    return;
  }
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
  const onSignal = (signal: string) => exitAfterShutdown(running, logger, signal);
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
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
