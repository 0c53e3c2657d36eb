import type { z } from 'zod';
import type { ServiceView, ValidateEvent } from '../../src/controller/service-controller.js';
import type { createServiceSchema, patchServiceSchema, validateServiceSchema } from '../../src/controller/service-spec.js';
import type { FieldError } from '../../src/errors/gateway-error.js';
import type { RouteTable } from '../../src/schema/route-table.js';
import type { EndpointStats } from '../../src/obs/endpoint-stats.js';
import type { ServiceEvent } from '../../src/controller/autoscale/events.js';
import type { endpointBodySchema, routePatchSchema } from '../../src/admin/endpoints-routes.js';
import type { issueBodySchema } from '../../src/admin/tokens-routes.js';

/**
 * The admin API as the console uses it. Request and response shapes are the types of the zod
 * schemas that validate the API on the server, so a renamed field breaks the console's build.
 */

export type { ServiceView, ValidateEvent, FieldError, RouteTable, EndpointStats, ServiceEvent };
export type ReplicaView = ServiceView['routes'][number];

/** Autoscaling as POST/PATCH /v1/services take it (docs/api.md); optional on servers without it. */
export interface AutoscalingInput {
  min_replicas: number;
  max_replicas: number;
  target_in_flight: number;
  stable_window_s?: number;
  panic_window_s?: number;
  scale_down_delay_s?: number;
  scale_to_zero_grace_s?: number;
}
export interface AutoscalingStatus {
  desired?: number;
  current?: number;
  panicking?: boolean;
  last_decision?: { at: string; from: number; to: number; reason: string } | null;
}

export type CreateServiceBody = z.input<typeof createServiceSchema> & { autoscaling?: AutoscalingInput };
export type PatchServiceBody = z.input<typeof patchServiceSchema> & { autoscaling?: AutoscalingInput | null };
export type ValidateBody = z.input<typeof validateServiceSchema>;
export type EndpointBody = z.input<typeof endpointBodySchema>;
export type RoutePatchBody = z.input<typeof routePatchSchema>;
export type IssueTokenBody = z.input<typeof issueBodySchema>;

/** A service as GET /v1/services returns it, with the autoscaling fields when the server has them. */
export type Service = ServiceView & {
  autoscaling?: (AutoscalingInput & { status?: AutoscalingStatus }) | null;
  model_mount_destination?: string | null;
};
export type Endpoint = RouteTable & { url: string };
export interface TokenInfo {
  jti: string;
  sub: string;
  created_at: string;
  expires_at: string;
  revoked: boolean;
}
export interface IssuedToken {
  token: string;
  jti: string;
  expires_at: string;
  sub: string;
}
export type ValidateResult = Extract<ValidateEvent, { type: 'result' }>;

/** An admin API error: the `{error: {code, message, details}}` body, or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: FieldError[] = [],
  ) {
    super(message);
  }

  /** Per-field messages, keyed by the field path the server names (`resources.cpu`). */
  fieldMessages(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const d of this.details) out[d.field] = out[d.field] ? `${out[d.field]}; ${d.message}` : d.message;
    return out;
  }
}

const TOKEN_KEY = 'modelgate.admin-token';

/** The admin token lives in sessionStorage only: gone when the tab closes, never in a cookie or URL. */
export const session = {
  load: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  save: (token: string): void => sessionStorage.setItem(TOKEN_KEY, token),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

const enc = encodeURIComponent;

async function toApiError(res: Response): Promise<ApiError> {
  type ErrorBody = { error?: { code?: string; message?: string; details?: FieldError[] } };
  let err: ErrorBody['error'];
  try {
    err = ((await res.json()) as ErrorBody | null)?.error;
  } catch {}
  return new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `${res.status} ${res.statusText}`, err?.details ?? []);
}

export class AdminApi {
  constructor(
    private readonly token: string,
    /** Called on 401 so the shell can go back to the sign-in screen. */
    private readonly onUnauthorized: () => void = () => {},
  ) {}

  async #fetch(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, credentials: 'omit', cache: 'no-store' });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      throw new ApiError(0, 'NETWORK', 'The gateway cannot be reached. Check that it is running.');
    }
    if (res.status === 401) {
      this.onUnauthorized();
      throw await toApiError(res);
    }
    if (!res.ok) throw await toApiError(res);
    return res;
  }

  async #json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.#fetch(method, path, body);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  listServices = async (): Promise<Service[]> => (await this.#json<{ services: Service[] }>('GET', '/v1/services')).services;
  getService = (name: string, logs = 20): Promise<Service> => this.#json('GET', `/v1/services/${enc(name)}?logs=${logs}`);
  createService = (body: CreateServiceBody): Promise<Service> => this.#json('POST', '/v1/services', body);
  patchService = (name: string, body: PatchServiceBody): Promise<Service> => this.#json('PATCH', `/v1/services/${enc(name)}`, body);
  terminateService = (name: string): Promise<void> => this.#json('DELETE', `/v1/services/${enc(name)}`);
  clearErrors = (name: string): Promise<Service> => this.#json('POST', `/v1/services/${enc(name)}/errors/clear`);
  /** Newest first: scale decisions, replica restarts and health changes. */
  serviceEvents = async (name: string, limit = 10): Promise<ServiceEvent[]> =>
    (await this.#json<{ events: ServiceEvent[] }>('GET', `/v1/services/${enc(name)}/events?limit=${limit}`)).events;

  /** POST /v1/services/validate: one line of NDJSON per event, passed to `onEvent` as it arrives. */
  async validate(body: ValidateBody, onEvent: (event: ValidateEvent) => void, signal?: AbortSignal): Promise<ValidateResult> {
    const res = await this.#fetch('POST', '/v1/services/validate', body, signal);
    if (!res.body) throw new ApiError(0, 'NETWORK', 'the validation stream did not open');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = '';
    let result: ValidateResult | null = null;
    const take = (line: string) => {
      if (line.trim() === '') return;
      const event = JSON.parse(line) as ValidateEvent;
      if (event.type === 'result') result = event;
      onEvent(event);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        take(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    }
    take(buffered);
    if (result === null) throw new ApiError(0, 'NETWORK', 'the validation stream ended without a result');
    return result;
  }

  listEndpoints = async (): Promise<Endpoint[]> => (await this.#json<{ endpoints: Endpoint[] }>('GET', '/v1/endpoints')).endpoints;
  getEndpoint = (name: string): Promise<Endpoint> => this.#json('GET', `/v1/endpoints/${enc(name)}`);
  putEndpoint = (name: string, body: EndpointBody): Promise<Endpoint> => this.#json('PUT', `/v1/endpoints/${enc(name)}`, body);
  patchEndpoint = (name: string, body: EndpointBody): Promise<Endpoint> => this.#json('PATCH', `/v1/endpoints/${enc(name)}`, body);
  deleteEndpoint = (name: string): Promise<void> => this.#json('DELETE', `/v1/endpoints/${enc(name)}`);
  patchRoute = (name: string, routeId: string, body: RoutePatchBody): Promise<Endpoint> =>
    this.#json('PATCH', `/v1/endpoints/${enc(name)}/routes/${enc(routeId)}`, body);

  listTokens = async (name: string): Promise<TokenInfo[]> => (await this.#json<{ tokens: TokenInfo[] }>('GET', `/v1/endpoints/${enc(name)}/tokens`)).tokens;
  issueToken = (name: string, body: IssueTokenBody): Promise<IssuedToken> => this.#json('POST', `/v1/endpoints/${enc(name)}/tokens`, body);
  revokeToken = (name: string, jti: string): Promise<void> => this.#json('DELETE', `/v1/endpoints/${enc(name)}/tokens/${enc(jti)}`);

  stats = (name: string): Promise<EndpointStats> => this.#json('GET', `/v1/endpoints/${enc(name)}/stats`);
}
