import { request } from 'node:http';
import { connect } from 'node:net';
import { HEALTH_CHECK_DEFAULTS, type HealthCheck } from './model-definition.js';
import type { ExitInfo, ReplicaHandle } from './runtime.js';

/**
 * Health of one replica, the seed's way: an HTTP GET of `path` every `interval` seconds, each
 * bounded by `max_wait_time`, passing on `expected_status_code`; with no health_check in the
 * definition, a TCP connect to the port. Two phases:
 *
 * - start-up: probe (every min(interval, 1 s), so a fast server is not kept out of the table
 *   for a whole interval) until the first pass, giving up after
 *   initial_delay + max_retries × interval seconds;
 * - running: probe every interval; max_retries failures in a row make the replica unhealthy.
 *
 * Either phase also ends at once when the process exits or the signal aborts.
 */

export interface ProbeResult {
  ok: boolean;
  /** What was seen, for last_error: `HTTP 500`, `ECONNREFUSED`, `timed out after 15 s`. */
  detail: string;
}

/** The check used when the definition has none: TCP connect with the seed's timings. */
export const TCP_CHECK = { ...HEALTH_CHECK_DEFAULTS, path: '' } as const;

export function probeOnce(host: string, port: number, check: HealthCheck | undefined, signal?: AbortSignal): Promise<ProbeResult> {
  const timeoutMs = Math.round((check?.max_wait_time ?? TCP_CHECK.max_wait_time) * 1000);
  return check ? probeHttp(host, port, check, timeoutMs, signal) : probeTcp(host, port, timeoutMs, signal);
}

function probeHttp(host: string, port: number, check: HealthCheck, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (result: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    const req = request({ host, port, path: check.path, method: 'GET', agent: false, signal, headers: { 'user-agent': 'modelgate-health', connection: 'close' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.on('error', () => undefined);
      res.resume();
      finish(status === check.expected_status_code ? { ok: true, detail: `HTTP ${status}` } : { ok: false, detail: `GET ${check.path} returned HTTP ${status}, expected ${check.expected_status_code}` });
    });
    const timer = setTimeout(() => finish({ ok: false, detail: `GET ${check.path} timed out after ${timeoutMs / 1000} s` }), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, detail: `GET ${check.path} failed: ${err.code ?? err.message}` }));
    req.end();
  });
}

function probeTcp(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const socket = connect({ host, port });
    const finish = (result: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = () => finish({ ok: false, detail: 'cancelled' });
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => finish({ ok: false, detail: `TCP connect timed out after ${timeoutMs / 1000} s` }), timeoutMs);
    socket.once('connect', () => finish({ ok: true, detail: 'port accepts connections' }));
    socket.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, detail: `TCP connect to port ${port} failed: ${err.code ?? err.message}` }));
  });
}

export type HealthOutcome =
  | { kind: 'healthy' }
  | { kind: 'failed'; reason: string }
  | { kind: 'exited'; exit: ExitInfo }
  | { kind: 'aborted' };

function timings(check: HealthCheck | undefined) {
  const c = check ?? TCP_CHECK;
  return { intervalMs: c.interval * 1000, maxRetries: c.max_retries, initialDelayMs: c.initial_delay * 1000 };
}

/** Waits on whichever comes first: the delay, the process exit, the abort. */
function pause(ms: number, handle: ReplicaHandle, signal: AbortSignal): Promise<'slept' | 'exited' | 'aborted'> {
  if (signal.aborted) return Promise.resolve('aborted');
  return new Promise((resolve) => {
    const timer = setTimeout(() => settle('slept'), ms);
    const onAbort = () => settle('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    void handle.exited.then(() => settle('exited'));
    let done = false;
    function settle(how: 'slept' | 'exited' | 'aborted') {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(how);
    }
  });
}

async function probeOrExit(handle: ReplicaHandle, check: HealthCheck | undefined, signal: AbortSignal): Promise<ProbeResult | { exit: ExitInfo } | null> {
  const exitOrNull = handle.exited.then((exit) => ({ exit }));
  const result = await Promise.race([probeOnce(handle.host, handle.port, check, signal), exitOrNull]);
  if (signal.aborted) return null;
  return result;
}

/** Start-up phase: resolves healthy on the first passing probe. */
export async function waitUntilHealthy(handle: ReplicaHandle, check: HealthCheck | undefined, signal: AbortSignal): Promise<HealthOutcome> {
  const { intervalMs, maxRetries, initialDelayMs } = timings(check);
  const windowMs = initialDelayMs + maxRetries * intervalMs;
  const startedAt = Date.now();
  const stepMs = Math.min(intervalMs, 1000);
  let last = 'no probe ran';
  for (;;) {
    const result = await probeOrExit(handle, check, signal);
    if (result === null) return { kind: 'aborted' };
    if ('exit' in result) return { kind: 'exited', exit: result.exit };
    if (result.ok) return { kind: 'healthy' };
    last = result.detail;
    if (Date.now() - startedAt >= windowMs) {
      return { kind: 'failed', reason: `health check did not pass within ${windowMs / 1000} s (initial_delay + max_retries × interval); last probe: ${last}` };
    }
    const how = await pause(Math.min(stepMs, Math.max(0, startedAt + windowMs - Date.now())), handle, signal);
    if (how === 'aborted') return { kind: 'aborted' };
  }
}

/** Running phase: resolves only when the replica stops being healthy (or on abort). */
export async function watchHealth(handle: ReplicaHandle, check: HealthCheck | undefined, signal: AbortSignal): Promise<HealthOutcome> {
  const { intervalMs, maxRetries } = timings(check);
  let failures = 0;
  for (;;) {
    const how = await pause(intervalMs, handle, signal);
    if (how === 'aborted') return { kind: 'aborted' };
    if (how === 'exited') return { kind: 'exited', exit: await handle.exited };
    const result = await probeOrExit(handle, check, signal);
    if (result === null) return { kind: 'aborted' };
    if ('exit' in result) return { kind: 'exited', exit: result.exit };
    if (result.ok) failures = 0;
    else if (++failures >= maxRetries) return { kind: 'failed', reason: `health check failed ${failures} times in a row; last: ${result.detail}` };
  }
}
