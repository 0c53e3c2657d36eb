import { AggregatorRegistry } from 'prom-client';
import { listenAdmin } from './admin/admin-listener.js';
import { createAdminApp } from './admin/app.js';
import { consoleRoutes } from './admin/console-routes.js';
import { statsRoutes } from './admin/stats-routes.js';
import { endpointsRoutes } from './admin/endpoints-routes.js';
import type { AdminMount } from './admin/mount.js';
import { OwnAddresses } from './admin/own-addresses.js';
import { tokensRoutes } from './admin/tokens-routes.js';
import { usageRoutes } from './admin/usage-routes.js';
import { CidrList } from './auth/cidr.js';
import { createAuth, type Auth } from './auth/create-auth.js';
import { serveMetricsToPrimary, serveStatsToPrimary, WorkerPool } from './cluster/workers.js';
import type { Settings } from './config/settings.js';
import type { ServiceController } from './controller/service-controller.js';
import type { AccessLogSink } from './obs/access-log.js';
import type { Logger } from './obs/logger.js';
import { collectEndpointStats, mergeEndpointStats, type EndpointStats } from './obs/endpoint-stats.js';
import { Metrics } from './obs/metrics.js';
import { GatewayServer } from './proxy/gateway-server.js';
import { createStore } from './store/create-store.js';
import { resolveSecrets, type ResolvedSecrets } from './store/secrets.js';
import { CertificateStore, readCaFile } from './tls/certificates.js';
import { isLeaseStore, type Store } from './store/store.js';

/**
 * Composition root: settings → store → auth → data plane (here, or in workers) → admin API and
 * controller, and the one ordered shutdown. The only module that knows every other one; it
 * builds and connects, the parts do the work.
 */

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

/** Starts every component of `role`; used by the process entry and by tests that run a gateway in-process. */
export async function startGateway(settings: Settings, logger: Logger, opts: StartOptions = {}): Promise<RunningGateway> {
  const role = opts.role ?? 'single';
  const core = await startCore(settings, logger, opts);
  const dataPlane = role === 'primary' ? await startWorkerPool(core, opts.workers ?? 2) : await startDataPlane(core, opts.accessLogger, role);
  const grace = settings.DRAIN_GRACE_MS;
  if (role === 'worker') {
    serveMetricsToPrimary(core.metrics.registry);
    serveStatsToPrimary((name) => collectEndpointStats(name, core.metrics, dataPlane.gateway));
    const shutdown = buildShutdown(core, 'worker draining', dataPlane, [() => dataPlane.drain(grace), () => core.auth.checker.stop(), () => core.store.close()]);
    return running(core, dataPlane, 0, shutdown);
  }
  const admin = await startAdmin(core, dataPlane);
  announce(core, dataPlane, admin.port);
  const shutdown = buildShutdown(core, 'draining', dataPlane, [
    () => admin.stopAccepting(),
    () => dataPlane.drain(grace),
    () => admin.controller?.stop(),
    () => core.auth.checker.stop(),
    () => admin.close(),
    () => core.store.close(),
    () => logger.info('stopped'),
  ]);
  return running(core, dataPlane, admin.port, shutdown);
}

/** What every role shares, started in this order. */
interface Core {
  settings: Settings;
  logger: Logger;
  metrics: Metrics;
  secrets: ResolvedSecrets;
  store: Store;
  auth: Auth;
}

async function startCore(settings: Settings, logger: Logger, opts: StartOptions): Promise<Core> {
  const metrics = new Metrics();
  const secrets = opts.secrets ?? (await resolveSecrets(settings, logger));
  const store = opts.store ?? createStore(settings, logger);
  await store.start();
  metrics.storeUp.set(store.health().up ? 1 : 0);
  // The store logs each up/down transition itself (once per transition, never per request).
  store.onHealthChange((h) => metrics.storeUp.set(h.up ? 1 : 0));
  const auth = await createAuth({ settings, tokenSecret: secrets.tokenSecret, store, logger, metrics });
  await auth.checker.start();
  return { settings, logger, metrics, secrets, store, auth };
}

/** The data plane as the admin API and the shutdown see it: served here, or by workers. */
interface DataPlane {
  readonly port: number;
  /** The plain-HTTP listener beside a TLS one (GATEWAY_HTTP_PORT), if any. */
  readonly plainPort?: number;
  readonly gateway: GatewayServer | null;
  drain(graceMs: number): Promise<void>;
  /** Facts for the drain's log line. */
  describe(): Record<string, unknown>;
  /** Prometheus text for the admin /metrics; undefined = this process's registry. */
  metricsText?: () => Promise<string>;
  /** One endpoint's live numbers for the console (a primary sums its workers'). */
  endpointStats(name: string): Promise<EndpointStats>;
}

/** Role gateway (single process or cluster worker): the data plane in this process. */
async function startDataPlane(core: Core, accessLogger: AccessLogSink | undefined, role: 'single' | 'worker'): Promise<DataPlane> {
  const { settings } = core;
  const trusted = settings.TRUSTED_PROXIES.length > 0 ? CidrList.compile(settings.TRUSTED_PROXIES) : null;
  // OpenTelemetry is loaded only when a collector is configured: zero cost otherwise.
  const tracer = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    ? (await import('./obs/otel.js')).createOtelTracer({ endpoint: settings.OTEL_EXPORTER_OTLP_ENDPOINT, serviceName: settings.OTEL_SERVICE_NAME })
    : undefined;
  const gateway = new GatewayServer({
    settings,
    store: core.store,
    access: core.auth.checker,
    metrics: core.metrics,
    logger: core.logger,
    accessLogger,
    isTrustedProxy: trusted ? (address) => trusted.matches(address) : undefined,
    tracer,
    // Workers on the embedded store share caps and rate limits through the primary.
    limitsChannel: role === 'worker' && !settings.REDIS_URL ? process : undefined,
    certificates: dataPlaneCertificates(settings),
    upstreamCa: settings.UPSTREAM_CA_FILE ? readCaFile(settings.UPSTREAM_CA_FILE) : undefined,
  });
  gateway.start();
  const { port } = await gateway.listen(settings.GATEWAY_PORT, settings.GATEWAY_HOST);
  const plainPort =
    settings.GATEWAY_HTTP_PORT === undefined
      ? undefined
      : (await gateway.listenPlain(settings.GATEWAY_HTTP_PORT, settings.GATEWAY_HOST, settings.HTTP_REDIRECT ? port : null)).port;
  return {
    port,
    plainPort,
    gateway,
    drain: (graceMs) => gateway.drain(graceMs),
    describe: () => ({ in_flight: gateway.inFlight }),
    endpointStats: async (name) => collectEndpointStats(name, core.metrics, gateway),
  };
}

/** Role primary: workers serve the data plane on the shared port; the embedded store is served to them over IPC. */
async function startWorkerPool(core: Core, count: number): Promise<DataPlane> {
  const { store, metrics } = core;
  const pool = new WorkerPool({
    count,
    tokenSecret: core.secrets.tokenSecret,
    redisUrl: core.settings.REDIS_URL,
    store: store.kind === 'memory' ? store : null,
    logger: core.logger,
  });
  const port = await pool.start();
  return {
    port,
    gateway: null,
    drain: (graceMs) => pool.drain(graceMs),
    describe: () => ({ workers: pool.size }),
    // A cluster primary proxies nothing itself: its workers' numbers are summed.
    endpointStats: async (name) => mergeEndpointStats(await pool.collectEndpointStats(name), name),
    metricsText: async () => {
      // Counters and histograms are summed across the primary and every worker.
      const parts = [await metrics.registry.getMetricsAsJSON(), ...(await pool.collectMetrics())];
      return AggregatorRegistry.aggregate(parts).metrics();
    },
  };
}

interface AdminPart {
  readonly port: number;
  readonly controller: ServiceController | null;
  /** Refuses new admin connections; `close()` later ends the open ones. */
  stopAccepting(): void;
  close(): Promise<void>;
}

/** Role admin: the admin API and the model-service controller. */
async function startAdmin(core: Core, dataPlane: DataPlane): Promise<AdminPart> {
  const { settings, logger, store, auth } = core;
  // Routes back to these listeners are refused (a proxy loop); the admin port is added once bound.
  const ownAddresses = new OwnAddresses(settings.APPS_DOMAIN);
  ownAddresses.add(settings.GATEWAY_HOST, dataPlane.port);
  if (dataPlane.plainPort !== undefined) ownAddresses.add(settings.GATEWAY_HOST, dataPlane.plainPort);
  const scheme = gatewayScheme(settings);
  const portSuffix = dataPlane.port === (scheme === 'https' ? 443 : 80) ? '' : `:${dataPlane.port}`;
  const endpointUrl = (name: string) => `${scheme}://${name}.${settings.APPS_DOMAIN}${portSuffix}/`;
  const controller = settings.CONTROLLER_ENABLED ? await createController(core, endpointUrl) : null;
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
    usageRoutes({ store, flushUsage: dataPlane.gateway ? () => dataPlane.gateway!.traffic.flushUsage() : undefined }),
  ];
  if (controller) mounts.push((await import('./admin/services-routes.js')).servicesRoutes(controller));
  mounts.push(consoleRoutes(), statsRoutes({ store, collect: dataPlane.endpointStats }));
  const app = createAdminApp(
    {
      adminToken: core.secrets.adminToken,
      bodyLimitBytes: settings.ADMIN_BODY_LIMIT_BYTES,
      logger,
      metrics: core.metrics,
      metricsText: dataPlane.metricsText,
      metricsAuth: settings.ADMIN_METRICS_AUTH,
      // The detailed reason (it names the store's address) is for the admin listener only, never the public /readyz.
      health: () => {
        const h = store.health();
        return { store: store.kind, store_up: h.up, ...(h.up ? {} : { store_reason: h.reason }) };
      },
    },
    mounts,
  );
  const server = await listenAdmin(app, {
    host: settings.ADMIN_HOST,
    port: settings.ADMIN_PORT,
    allowedHosts: settings.ADMIN_ALLOWED_HOSTS,
    certificates: adminCertificates(settings),
    onCertificateError: (err) => logger.error({ err_message: err.message }, 'admin TLS certificate not reloaded; the previous one stays in use'),
  });
  if (controller) {
    // Restoring services starts processes; the gateway already serves while they come up.
    controller.start().catch((err) => logger.error({ err }, 'model-service controller failed to restore services'));
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : settings.ADMIN_PORT;
  ownAddresses.add(settings.ADMIN_HOST, port);
  let closed: Promise<void> | null = null;
  const stopAccepting = () => void (closed ??= new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    port,
    controller,
    stopAccepting,
    async close() {
      stopAccepting();
      server.closeAllConnections();
      await closed;
    },
  };
}

/**
 * The model-service controller and its admin routes are loaded only when CONTROLLER_ENABLED:
 * a gateway that runs no model services does not carry their modules (and schemas) in memory.
 */
async function createController(core: Core, endpointUrl: (name: string) => string): Promise<ServiceController> {
  const { settings, logger, store } = core;
  const [{ ServiceController }, { LeaseLeadership }, { KubernetesRuntime }] = await Promise.all([
    import('./controller/service-controller.js'),
    import('./controller/leadership.js'),
    import('./controller/kubernetes-runtime.js'),
  ]);
  // With a shared store one controller leads (a lease); the embedded store has one process.
  const leadership = isLeaseStore(store) ? new LeaseLeadership({ store, logger, ttlMs: settings.CONTROLLER_LEASE_MS }) : undefined;
  const kubernetes = () => new KubernetesRuntime({ namespace: settings.KUBERNETES_NAMESPACE, kubeconfig: settings.KUBECONFIG, logger });
  return new ServiceController({ store, settings, logger, endpointUrl, metrics: core.metrics, leadership, kubernetes, defaultRuntime: settings.CONTROLLER_RUNTIME });
}

/** The start line, and a generated admin token printed once so the operator can copy it. */
function announce(core: Core, dataPlane: DataPlane, adminPort: number): void {
  const { settings, store, secrets } = core;
  if (secrets.generated.adminToken) {
    // On stdout, not through the logger (which redacts it).
    process.stdout.write(
      `\nmodelgate: generated ADMIN_TOKEN (saved ${settings.ephemeral ? 'nowhere: --ephemeral' : `in ${settings.DATA_DIR}/admin-token`}):\n  ${secrets.adminToken}\n\n`,
    );
  }
  const ephemeral = store.kind === 'memory' && settings.ephemeral;
  core.logger.info(
    {
      gateway: `${gatewayScheme(settings)}://${settings.GATEWAY_HOST}:${dataPlane.port}`,
      admin: `${settings.ADMIN_TLS_CERT_FILE ? 'https' : 'http'}://${settings.ADMIN_HOST}:${adminPort}`,
      ...(dataPlane.plainPort !== undefined ? { http: `http://${settings.GATEWAY_HOST}:${dataPlane.plainPort}` } : {}),
      store: store.kind,
      data_dir: store.kind === 'memory' ? (settings.ephemeral ? null : settings.DATA_DIR) : undefined,
      apps_domain: settings.APPS_DOMAIN,
    },
    ephemeral ? 'modelgate started (ephemeral: state is kept in memory only and lost on exit)' : 'modelgate started',
  );
}

/** One shutdown for every role: log, then each step in order, once however often it is asked for. */
function buildShutdown(core: Core, message: string, dataPlane: DataPlane, steps: (() => unknown)[]): RunningGateway['shutdown'] {
  let stopping: Promise<void> | null = null;
  return (signal) =>
    (stopping ??= (async () => {
      core.logger.info({ signal, ...dataPlane.describe(), grace_ms: core.settings.DRAIN_GRACE_MS }, message);
      for (const step of steps) await step();
    })());
}

function running(core: Core, dataPlane: DataPlane, adminPort: number, shutdown: RunningGateway['shutdown']): RunningGateway {
  const { settings, store, secrets } = core;
  return { settings, store, gateway: dataPlane.gateway, adminToken: secrets.adminToken, gatewayPort: dataPlane.port, adminPort, shutdown };
}

function gatewayScheme(settings: Settings): 'http' | 'https' {
  return settings.TLS_CERT_FILE ? 'https' : 'http';
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
