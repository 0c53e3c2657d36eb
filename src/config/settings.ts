import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseRedisUrl } from './redis-url.js';

/**
 * Static settings: read once at start-up from an optional YAML file (`--config`), overridden by
 * environment variables, validated with zod. This is the only module that reads process.env.
 * Every setting has one env name (UPPER_SNAKE) and one YAML key (the same name in lower case).
 */

const port = z.coerce.number().int().min(0).max(65535);
const positiveMs = z.coerce.number().int().min(1);
const nonNegativeInt = z.coerce.number().int().min(0);
const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);
// A word it does not know is an error, not `false`: ACCESS_LOG=ture must not turn logging off.
const bool = z.preprocess(
  (v) => {
    if (typeof v !== 'string') return v;
    const word = v.trim().toLowerCase();
    return TRUE_WORDS.has(word) ? true : FALSE_WORDS.has(word) ? false : v;
  },
  z.boolean({ error: 'must be true or false (also 1/0, yes/no, on/off)' }),
);
const list = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v),
  z.array(z.string()),
);
const optionalString = z.preprocess((v) => (v === '' ? undefined : v), z.string().optional());

export const settingsSchema = z.object({
  GATEWAY_HOST: z.string().min(1).default('0.0.0.0'),
  GATEWAY_PORT: port.default(8080),
  ADMIN_HOST: z.string().min(1).default('127.0.0.1'),
  ADMIN_PORT: port.default(8081),
  /** Extra Host names the admin listener answers to (its own addresses and localhost always count). */
  ADMIN_ALLOWED_HOSTS: list.default([]),
  /** Require the admin token on the admin listener's /metrics too. */
  ADMIN_METRICS_AUTH: bool.default(false),
  ADMIN_TOKEN: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(16, 'must be at least 16 characters').optional()),
  REDIS_URL: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .superRefine((v, ctx) => {
        try {
          parseRedisUrl(v);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .optional(),
  ),
  /** Replicas that must confirm an admin write before it is acknowledged; unset = 1 with Sentinel, else 0. */
  REDIS_WAIT_REPLICAS: z.preprocess((v) => (v === '' ? undefined : v), z.coerce.number().int().min(0).max(16).optional()),
  REDIS_WAIT_TIMEOUT_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
  /** Empty string (or --ephemeral) = memory only. */
  DATA_DIR: z.string().default('./data'),
  REDIS_PREFIX: z.string().max(64).default('mg:'),
  TOKEN_SECRET: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(32, 'must be at least 32 characters').optional()),
  TOKEN_JWKS_URL: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z.string().url('must be an http(s) URL').optional(),
  ),
  TOKEN_PUBLIC_KEY_FILE: optionalString,
  TOKEN_ISSUERS: list.default([]),
  TOKEN_MAX_LIFETIME_SECONDS: z.coerce.number().int().min(60).default(366 * 24 * 3600),
  TOKEN_CACHE_MAX: z.coerce.number().int().min(0).default(100_000),
  APPS_DOMAIN: z
    .string()
    .min(1)
    .regex(/^[a-z0-9.-]+$/, 'must be a lower-case domain name')
    .default('localhost'),
  WORKERS: nonNegativeInt.max(256).default(1),
  HOLD_TIMEOUT_MS: nonNegativeInt.default(30_000),
  HOLD_QUEUE_MAX: nonNegativeInt.default(1000),
  MAX_CONCURRENT_REQUESTS: z.coerce.number().int().min(1).default(10_000),
  MAX_CONCURRENT_PER_ENDPOINT: z.coerce.number().int().min(1).default(5_000),
  MAX_CONNECTIONS: z.coerce.number().int().min(1).default(20_000),
  CONNECT_TIMEOUT_MS: positiveMs.default(5_000),
  FIRST_BYTE_TIMEOUT_MS: positiveMs.default(300_000),
  IDLE_TIMEOUT_MS: positiveMs.default(300_000),
  BODY_LIMIT_BYTES: z.coerce.number().int().min(0).default(100 * 1024 * 1024),
  REQUEST_BUFFER_MAX_BYTES: z.coerce.number().int().min(0).max(16 * 1024 * 1024).default(64 * 1024),
  MAX_HEADER_BYTES: z.coerce.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
  /** Header lines per request; more is refused with 431 GW_HEADERS_TOO_LARGE (Envoy's default is 100 too). */
  MAX_HEADER_COUNT: z.coerce.number().int().min(16).max(10_000).default(100),
  /** Upstream response header lines; more → 502 (Envoy's max_response_headers_count, default 100 too). */
  UPSTREAM_MAX_HEADER_COUNT: z.coerce.number().int().min(16).max(10_000).default(100),
  HEADERS_TIMEOUT_MS: positiveMs.default(20_000),
  REQUEST_BODY_TIMEOUT_MS: positiveMs.default(300_000),
  /**
   * Idle client keep-alive. 60 s like a cloud load balancer (nginx 75 s): node's 5 s makes clients
   * that keep a pool (undici, browsers, mobile SDKs) reconnect after every lull, and those
   * reconnects land on the requests that follow it (docs/performance.md, "Client keep-alive").
   * Idle sockets are bounded by MAX_CONNECTIONS.
   */
  KEEP_ALIVE_TIMEOUT_MS: positiveMs.default(60_000),
  UPSTREAM_POOL_CONNECTIONS: z.coerce.number().int().min(1).default(128),
  /**
   * Which client carries requests to plain http:// HTTP/1.1 routes whose body is absent or read
   * whole: the gateway's own (src/upstream/h1-client.ts) or undici. Streamed bodies, upgrades,
   * https:// and HTTP/2 routes always go through undici.
   */
  UPSTREAM_CLIENT: z.enum(['modelgate', 'undici']).default('modelgate'),
  /** Requests that may wait for one route's pool past its busy connections; more → 503 GW_OVERLOADED. */
  UPSTREAM_PENDING_MAX: nonNegativeInt.default(1024),
  /** Extra tries on other routes after a connect failure; the design allows at most 2 (each try skips the routes already tried). */
  RETRY_MAX: nonNegativeInt.max(2).default(2),
  EJECT_AFTER_FAILURES: z.coerce.number().int().min(1).default(3),
  EJECT_BASE_MS: positiveMs.default(5_000),
  EJECT_MAX_MS: positiveMs.default(300_000),
  DRAIN_GRACE_MS: nonNegativeInt.default(30_000),
  RESYNC_INTERVAL_MS: positiveMs.default(10_000),
  ENDPOINT_CACHE_MAX: z.coerce.number().int().min(1).default(25_000),
  /** V8's old-generation growth between full collections, in percent (docs/performance.md); 0 = V8's own heuristic. */
  HEAP_GROWING_PERCENT: z.coerce.number().int().min(0).max(300).default(30),
  NEGATIVE_CACHE_TTL_MS: nonNegativeInt.default(1_000),
  TRUSTED_PROXIES: list.default([]),
  ADMIN_BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  WS_IDLE_TIMEOUT_MS: positiveMs.default(300_000),
  METRICS_ENDPOINT_LABEL_CAP: z.coerce.number().int().min(1).default(200),
  /** OTLP/HTTP collector base URL; unset = no tracing and no OpenTelemetry module loaded. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.preprocess((v) => (v === '' ? undefined : v), z.string().url('must be an http(s) URL').optional()),
  OTEL_SERVICE_NAME: z.string().min(1).max(128).default('modelgate'),
  /** PEM certificate (chain) + key: GATEWAY_PORT speaks TLS with HTTP/2 and HTTP/1.1 (ALPN). */
  TLS_CERT_FILE: optionalString,
  TLS_KEY_FILE: optionalString,
  /** Extra certificates chosen by SNI: NAME.crt + NAME.key pairs. */
  TLS_CERTS_DIR: optionalString,
  /** With TLS: an extra plain-HTTP listener (e.g. for /healthz, or redirects with HTTP_REDIRECT). */
  GATEWAY_HTTP_PORT: z.preprocess((v) => (v === '' ? undefined : v), port.optional()),
  HTTP_REDIRECT: bool.default(false),
  /** HTTP/2: concurrent streams per client connection. */
  H2_MAX_CONCURRENT_STREAMS: z.coerce.number().int().min(1).max(10_000).default(100),
  /** HTTP/2 rapid-reset guard: streams a client may cancel before their response, per connection per 10 s. */
  H2_MAX_EARLY_RESETS: z.coerce.number().int().min(1).default(200),
  /** Extra CA certificates (PEM) trusted for https:// routes, besides the system's. */
  UPSTREAM_CA_FILE: optionalString,
  ADMIN_TLS_CERT_FILE: optionalString,
  ADMIN_TLS_KEY_FILE: optionalString,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ACCESS_LOG: bool.default(true),
  CONTROLLER_ENABLED: bool.default(true),
  CONTROLLER_PORT_RANGE: z
    .string()
    .regex(/^\d+-\d+$/, 'must be FROM-TO')
    .default('20000-29999'),
  CONTROLLER_WORK_DIR: optionalString,
  /** User replicas run as (name, uid or uid:gid); created by the operator. Unset: the gateway's own user. */
  CONTROLLER_RUN_AS: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .regex(/^([a-z_][a-z0-9_.-]*\$?|\d+(:\d+)?)$/i, 'must be a user name, a uid or uid:gid')
      .optional(),
  ),
  /** Runtime of services that name none: local processes or Kubernetes Pods. */
  CONTROLLER_RUNTIME: z.enum(['process', 'kubernetes']).default('process'),
  /** Namespace of replica Pods; default: the gateway's own (in a cluster) or "default". */
  KUBERNETES_NAMESPACE: optionalString,
  /** Kubeconfig file for the kubernetes runtime; unset = in-cluster service account. */
  KUBECONFIG: optionalString,
  /** Controller leadership lease with Redis: a dead leader is replaced within this time. */
  CONTROLLER_LEASE_MS: z.coerce.number().int().min(1_000, 'must be at least 1000').max(15_000, 'must be at most 15000 (the takeover bound)').default(10_000),
  /** Host written into the route URLs of controller replicas (reachable by every gateway instance). */
  CONTROLLER_ADVERTISE_HOST: z
    .string()
    .min(1)
    .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)$/, 'must be a host name, an IPv4 address or a [bracketed] IPv6 address')
    .default('127.0.0.1'),
});

export type Settings = Readonly<z.infer<typeof settingsSchema>> & {
  /** Memory-only embedded store (DATA_DIR empty or --ephemeral). */
  readonly ephemeral: boolean;
  readonly configFile?: string;
};

export const SETTING_NAMES = Object.keys(settingsSchema.shape) as (keyof z.infer<typeof settingsSchema>)[];

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  configFile?: string;
  ephemeral?: boolean;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SettingsError(`--config ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new SettingsError(`--config ${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new SettingsError(`--config ${file}: must be a mapping of settings`);
  const out: Record<string, unknown> = {};
  const known = new Set<string>(SETTING_NAMES);
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const name = key.toUpperCase();
    if (!known.has(name)) throw new SettingsError(`--config ${file}: ${key}: unknown setting`);
    out[name] = value;
  }
  return out;
}

/** Loads and validates settings; throws SettingsError with one line naming every bad setting. */
export function loadSettings(opts: LoadOptions = {}): Settings {
  const env = opts.env ?? process.env;
  const fromFile = opts.configFile ? readConfigFile(opts.configFile) : {};
  const merged: Record<string, unknown> = { ...fromFile };
  for (const name of SETTING_NAMES) {
    const value = env[name];
    if (value !== undefined) merged[name] = value;
  }
  const result = settingsSchema.safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${String(issue.path[0] ?? 'settings')}: ${issue.message}`);
    throw new SettingsError(`invalid settings: ${problems.join('; ')}`);
  }
  const s = result.data;
  const problems: string[] = [];
  if (s.REDIS_URL && !s.TOKEN_SECRET) problems.push('TOKEN_SECRET: required when REDIS_URL is set (every instance must sign with the same key)');
  if (s.TOKEN_JWKS_URL && !/^https?:/.test(s.TOKEN_JWKS_URL)) problems.push('TOKEN_JWKS_URL: must be an http(s) URL');
  // node:http refuses to start with headersTimeout > requestTimeout; say so by setting name.
  if (s.HEADERS_TIMEOUT_MS > s.REQUEST_BODY_TIMEOUT_MS) problems.push('HEADERS_TIMEOUT_MS: must not exceed REQUEST_BODY_TIMEOUT_MS');
  const [lo, hi] = s.CONTROLLER_PORT_RANGE.split('-').map(Number);
  if ((s.TLS_CERT_FILE === undefined) !== (s.TLS_KEY_FILE === undefined)) problems.push('TLS_CERT_FILE: TLS_CERT_FILE and TLS_KEY_FILE go together');
  if (s.TLS_CERTS_DIR && !s.TLS_CERT_FILE) problems.push('TLS_CERTS_DIR: needs TLS_CERT_FILE and TLS_KEY_FILE for the default certificate');
  if (s.GATEWAY_HTTP_PORT !== undefined && !s.TLS_CERT_FILE) problems.push('GATEWAY_HTTP_PORT: only with TLS_CERT_FILE (GATEWAY_PORT is plain HTTP already)');
  if (s.HTTP_REDIRECT && s.GATEWAY_HTTP_PORT === undefined) problems.push('HTTP_REDIRECT: needs GATEWAY_HTTP_PORT');
  if ((s.ADMIN_TLS_CERT_FILE === undefined) !== (s.ADMIN_TLS_KEY_FILE === undefined)) problems.push('ADMIN_TLS_CERT_FILE: ADMIN_TLS_CERT_FILE and ADMIN_TLS_KEY_FILE go together');
  if (!(lo >= 1024 && hi <= 65535 && lo < hi)) problems.push('CONTROLLER_PORT_RANGE: must be FROM-TO within 1024-65535');
  if (problems.length > 0) throw new SettingsError(`invalid settings: ${problems.join('; ')}`);
  const ephemeral = opts.ephemeral === true || s.DATA_DIR === '';
  return Object.freeze({ ...s, ephemeral, configFile: opts.configFile });
}
