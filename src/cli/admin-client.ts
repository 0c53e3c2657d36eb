import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError, UsageError, type CliIo } from './cli-io.js';
import { savedSecret, savedSecretHint, settingsFrom } from './cli-settings.js';

/**
 * What every admin-API command shares: option parsing, where the admin API is and its token
 * (`--admin-url`/`--admin-token`, else ADMIN_HOST:ADMIN_PORT and ADMIN_TOKEN from settings,
 * else DATA_DIR/admin-token), one request helper that turns any failure into one line, and a
 * plain-text table printer.
 */

const ADMIN_TIMEOUT_MS = 15_000;

/** Options every admin command accepts. */
export const ADMIN_OPTIONS = {
  'admin-url': { type: 'string' },
  'admin-token': { type: 'string' },
  json: { type: 'boolean' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export type Values = Record<string, string | boolean | string[] | undefined>;

export function parseCommandArgs(args: string[], options: ParseArgsConfig['options']): { values: Values; positionals: string[] } {
  try {
    const parsed = parseArgs({ args, options: { ...ADMIN_OPTIONS, ...options }, allowPositionals: true, strict: true });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]);
  }
}

interface ApiErrorBody {
  error?: { code?: string; message?: string; details?: { field: string; message: string }[] };
}

export function describeApiError(status: number, body: unknown): string {
  const error = (body as ApiErrorBody | null)?.error;
  if (!error?.code) return `admin API answered HTTP ${status}`;
  const details = error.details?.map((d) => `${d.field}: ${d.message}`).join('; ');
  return `${error.code}: ${error.message ?? ''}${details ? ` (${details})` : ''}`;
}

export class AdminClient {
  readonly base: string;
  readonly #token: string;
  readonly #fetch: typeof fetch;

  constructor(base: string, token: string, fetchImpl: typeof fetch) {
    this.base = base;
    this.#token = token;
    this.#fetch = fetchImpl;
  }

  static from(values: Values, io: CliIo): AdminClient {
    const settings = settingsFrom(io, values.config as string | undefined);
    const token = (values['admin-token'] as string | undefined) ?? settings.ADMIN_TOKEN ?? savedSecret(settings, 'adminToken');
    if (!token) throw new CliError(`no admin token: set ADMIN_TOKEN, pass --admin-token, or run where ${savedSecretHint('adminToken')} is`);
    let host = settings.ADMIN_HOST;
    if (host === '0.0.0.0' || host === '::' || host === '[::]') host = '127.0.0.1';
    if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
    const base = ((values['admin-url'] as string | undefined) ?? `http://${host}:${settings.ADMIN_PORT}`).replace(/\/+$/, '');
    try {
      const url = new URL(base);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
    } catch {
      throw new UsageError(`--admin-url ${base}: not an http(s) URL`);
    }
    return new AdminClient(base, token, io.fetch ?? fetch);
  }

  /** Calls the admin API; any status outside `ok` becomes a CliError naming the API's error code. */
  async call(method: string, path: string, body?: unknown, ok: number[] = [200, 201, 204]): Promise<{ status: number; body: unknown }> {
    const url = `${this.base}${path}`;
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach the admin API at ${this.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const text = await response.text();
    let parsed: unknown = null;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (!ok.includes(response.status)) throw new CliError(describeApiError(response.status, parsed));
    return { status: response.status, body: parsed };
  }
}

/** Left-aligned columns, a header row, two spaces between columns. */
export function table(headers: string[], rows: (string | number | boolean | null | undefined)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

export function printJson(io: CliIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

/** An endpoint or service name from the positionals. */
export function nameArg(positionals: string[], what = 'NAME'): string {
  if (positionals.length !== 1) throw new UsageError(`exactly one ${what} is required`);
  return encodeURIComponent(positionals[0]);
}

export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`--file ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`--file ${file}: not valid JSON: ${(err as Error).message}`);
  }
}

/** `[ID=]URL[,weight=N][,status=S]` → a route input of the admin API. */
export function parseRouteSpec(spec: string): Record<string, unknown> {
  const [head, ...opts] = spec.split(',');
  const route: Record<string, unknown> = {};
  const eq = head.indexOf('=');
  const schemeAt = head.indexOf('://');
  if (eq > 0 && (schemeAt < 0 || eq < schemeAt)) {
    route.id = head.slice(0, eq);
    route.url = head.slice(eq + 1);
  } else {
    route.url = head;
  }
  for (const opt of opts) {
    const [k, v] = opt.split('=');
    if (k === 'weight' && v !== undefined && /^\d+$/.test(v)) route.weight = Number(v);
    else if (k === 'status' && v) route.status = v;
    else throw new UsageError(`--route ${spec}: expected [ID=]URL[,weight=N][,status=S]`);
  }
  return route;
}
