import { z } from 'zod';
import { autoscalingSchema } from '../controller/autoscale/spec.js';
import { createServiceSchema, patchServiceSchema, validateServiceSchema } from '../controller/service-spec.js';
import { STATUS_BY_CODE } from '../errors/gateway-error.js';
import { rateLimitSchema, routeTableSchema } from '../schema/route-table.js';
import { endpointBodySchema, routePatchSchema, routesBodySchema } from './endpoints-routes.js';
import { issueBodySchema } from './tokens-routes.js';

/**
 * The admin API as an OpenAPI 3.1 document. Request bodies come from the same zod schemas the
 * routes validate with (`z.toJSONSchema`, input side); responses from the route-table schema
 * (output side) and the small response shapes below. Built once, on first request, and served
 * at GET /openapi.json on the admin listener (no auth). docs/api.md is the prose companion.
 */

const errorSchema = z
  .object({
    error: z
      .object({
        code: z.enum(Object.keys(STATUS_BY_CODE) as [string, ...string[]]),
        message: z.string(),
        request_id: z.string(),
        details: z.array(z.object({ field: z.string(), message: z.string() }).strict()).optional(),
      })
      .strict(),
  })
  .strict();

const endpointSchema = routeTableSchema.extend({ url: z.string() }).strict();

/** Present only when the token was issued with them (docs/traffic-control.md). */
const tokenTraffic = { priority: z.number().int().min(0).max(9).optional(), rate_limit: rateLimitSchema.optional() };

const tokenIssuedSchema = z.object({ token: z.string(), jti: z.string(), expires_at: z.string(), sub: z.string(), ...tokenTraffic }).strict();

const tokenListSchema = z
  .object({
    tokens: z.array(z.object({ jti: z.string(), sub: z.string(), created_at: z.string(), expires_at: z.string(), revoked: z.boolean(), ...tokenTraffic }).strict()),
  })
  .strict();

const usageTotals = { prompt_tokens: z.number().int(), completion_tokens: z.number().int(), requests: z.number().int() };
const usageReportSchema = z
  .object({
    endpoint: z.string(),
    from: z.string(),
    to: z.string(),
    group_by: z.enum(['token', 'sub']).nullable(),
    ...usageTotals,
    groups: z.array(z.object({ token: z.string().optional(), sub: z.string().optional(), ...usageTotals }).strict()).optional(),
  })
  .strict();

const serviceSchema = z.looseObject({
  name: z.string(),
  endpoint_id: z.string(),
  url: z.string().optional(),
  status: z.enum(['PROVISIONING', 'HEALTHY', 'DEGRADED', 'UNHEALTHY', 'TERMINATING', 'IDLE']),
  replicas: z.number().int(),
  healthy_replicas: z.number().int(),
  public: z.boolean(),
  model_folder: z.string(),
  runtime: z.enum(['process', 'kubernetes']),
  image: z.string().nullable(),
  error: z.string().nullable(),
  routes: z.array(
    z.looseObject({
      id: z.string(),
      status: z.string(),
      runtime: z.enum(['process', 'kubernetes']),
      node: z.string().nullable(),
      host: z.string().nullable(),
      port: z.number().int().nullable(),
      pid: z.number().int().nullable(),
      restarts: z.number().int(),
      last_error: z.string().nullable(),
    }),
  ),
  /** Present when the controller scales the service. */
  autoscaling: z
    .looseObject({
      ...autoscalingSchema.shape,
      status: z
        .object({
          desired: z.number().int(),
          current: z.number().int(),
          panicking: z.boolean(),
          last_decision: z.object({ at: z.string(), from: z.number().int(), to: z.number().int(), reason: z.string() }).strict().nullable(),
        })
        .strict(),
    })
    .optional(),
});

const controllerSchema = z
  .object({
    mode: z.enum(['lease', 'sole']),
    instance: z.string(),
    is_leader: z.boolean(),
    leader: z.string().nullable(),
    term: z.number().int().nullable(),
    lease_ttl_ms: z.number().int().nullable(),
  })
  .strict();

const serviceEventsSchema = z
  .object({
    events: z.array(
      z
        .object({
          at: z.string(),
          kind: z.enum(['scale', 'restart', 'health']),
          message: z.string(),
          from: z.number().int().optional(),
          to: z.number().int().optional(),
          reason: z.string().optional(),
          replica: z.string().optional(),
          status: z.string().optional(),
        })
        .strict(),
    ),
  })
  .strict();

const healthSchema = z.looseObject({ status: z.string() });

/** GET /v1/endpoints/{name}/stats (src/obs/endpoint-stats.ts): cumulative, the reader takes differences. */
const endpointStatsSchema = z.object({
  endpoint: z.string(),
  at: z.number(),
  requests: z.record(z.string(), z.number()),
  latency: z.object({ le: z.array(z.number()), counts: z.array(z.number()), sum: z.number(), count: z.number() }),
  errors: z.record(z.string(), z.number()),
  in_flight: z.number(),
  routes: z.array(z.object({ id: z.string(), in_flight: z.number() })),
});

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string) => ({ content: { 'application/json': { schema: ref(name) } } });
const errorResponse = (description: string) => ({ description, ...json('Error') });

const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$' } };
const routeIdParam = { name: 'route_id', in: 'path', required: true, schema: { type: 'string' } };
const jtiParam = { name: 'jti', in: 'path', required: true, schema: { type: 'string' } };

const COMMON_ERRORS = {
  '400': errorResponse('ADM_INVALID: a bad field (see error.details)'),
  '401': errorResponse('ADM_UNAUTHORIZED: missing or wrong admin token'),
  '413': errorResponse('ADM_BODY_TOO_LARGE'),
  '421': errorResponse('ADM_MISDIRECTED: a Host the admin listener does not answer to (ADMIN_ALLOWED_HOSTS)'),
  '500': errorResponse('ADM_INTERNAL'),
};

function op(summary: string, responses: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { summary, security: [{ adminToken: [] }], ...extra, responses: { ...responses, ...COMMON_ERRORS } };
}

const body = (name: string, required = true) => ({ requestBody: { required, ...json(name) } });

export function buildOpenApi(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'modelgate admin API',
      version: '1',
      description: 'Route tables, tokens and model services of a modelgate gateway. Errors are {"error":{"code","message","request_id"}}.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' } },
      schemas: {
        Error: jsonSchema(errorSchema, 'output'),
        Endpoint: jsonSchema(endpointSchema, 'output'),
        EndpointList: { type: 'object', properties: { endpoints: { type: 'array', items: ref('Endpoint') } }, required: ['endpoints'], additionalProperties: false },
        EndpointBody: jsonSchema(endpointBodySchema, 'input'),
        RoutesBody: jsonSchema(routesBodySchema, 'input'),
        RoutePatch: jsonSchema(routePatchSchema, 'input'),
        TokenRequest: jsonSchema(issueBodySchema, 'input'),
        TokenIssued: jsonSchema(tokenIssuedSchema, 'output'),
        TokenList: jsonSchema(tokenListSchema, 'output'),
        UsageReport: jsonSchema(usageReportSchema, 'output'),
        ServiceCreate: jsonSchema(createServiceSchema, 'input'),
        ServicePatch: jsonSchema(patchServiceSchema, 'input'),
        ServiceValidate: jsonSchema(validateServiceSchema, 'input'),
        Service: jsonSchema(serviceSchema, 'output'),
        ServiceEvents: jsonSchema(serviceEventsSchema, 'output'),
        ServiceList: { type: 'object', properties: { services: { type: 'array', items: ref('Service') } }, required: ['services'] },
        Controller: jsonSchema(controllerSchema, 'output'),
        Health: jsonSchema(healthSchema, 'output'),
        EndpointStats: jsonSchema(endpointStatsSchema, 'output'),
      },
    },
    paths: {
      '/healthz': { get: { summary: 'Admin listener alive (no auth)', responses: { '200': { description: 'ok', ...json('Health') } } } },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics (no auth unless ADMIN_METRICS_AUTH=true)',
          responses: {
            '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } },
            '401': errorResponse('ADM_UNAUTHORIZED: ADMIN_METRICS_AUTH=true and no or a wrong admin token'),
            '421': errorResponse('ADM_MISDIRECTED'),
          },
        },
      },
      '/openapi.json': { get: { summary: 'This document (no auth)', responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } } } },
      '/v1/endpoints': {
        get: op('List endpoints', { '200': { description: 'every endpoint', ...json('EndpointList') } }),
      },
      '/v1/endpoints/{name}': {
        parameters: [nameParam],
        get: op('One endpoint', { '200': { description: 'the endpoint', ...json('Endpoint') }, '404': errorResponse('ADM_NOT_FOUND') }),
        put: op(
          'Create or replace an endpoint',
          { '200': { description: 'replaced', ...json('Endpoint') }, '201': { description: 'created', ...json('Endpoint') }, '409': errorResponse('ADM_CONFLICT: expected_version mismatch') },
          body('EndpointBody', false),
        ),
        patch: op(
          'Change some fields of an endpoint',
          { '200': { description: 'the new table', ...json('Endpoint') }, '404': errorResponse('ADM_NOT_FOUND'), '409': errorResponse('ADM_CONFLICT') },
          body('EndpointBody'),
        ),
        delete: op('Delete an endpoint; its tokens stop working', { '204': { description: 'deleted' }, '404': errorResponse('ADM_NOT_FOUND') }),
      },
      '/v1/endpoints/{name}/routes': {
        parameters: [nameParam],
        put: op(
          'Replace the route table',
          { '200': { description: 'the new table', ...json('Endpoint') }, '404': errorResponse('ADM_NOT_FOUND'), '409': errorResponse('ADM_CONFLICT: version mismatch') },
          body('RoutesBody'),
        ),
      },
      '/v1/endpoints/{name}/routes/{route_id}': {
        parameters: [nameParam, routeIdParam],
        patch: op(
          'Change one route (weight, status, url)',
          { '200': { description: 'the new table', ...json('Endpoint') }, '404': errorResponse('ADM_NOT_FOUND'), '409': errorResponse('ADM_CONFLICT') },
          body('RoutePatch'),
        ),
      },
      '/v1/endpoints/{name}/tokens': {
        parameters: [nameParam],
        post: op('Issue a token', { '201': { description: 'the token (shown once)', ...json('TokenIssued') }, '404': errorResponse('ADM_NOT_FOUND') }, body('TokenRequest', false)),
        get: op('List token metadata (never the token strings)', { '200': { description: 'tokens', ...json('TokenList') }, '404': errorResponse('ADM_NOT_FOUND') }),
      },
      '/v1/endpoints/{name}/usage': {
        parameters: [nameParam],
        get: op(
          'Metered LLM usage of an endpoint: totals, optionally per token (jti) or per sub',
          { '200': { description: 'usage', ...json('UsageReport') }, '404': errorResponse('ADM_NOT_FOUND') },
          {
            parameters: [
              { name: 'from', in: 'query', required: false, schema: { type: 'string' }, description: 'RFC 3339 or epoch seconds; default to - 24 h' },
              { name: 'to', in: 'query', required: false, schema: { type: 'string' }, description: 'RFC 3339 or epoch seconds; default now' },
              { name: 'group_by', in: 'query', required: false, schema: { type: 'string', enum: ['token', 'sub'] } },
            ],
          },
        ),
      },
      '/v1/endpoints/{name}/stats': {
        parameters: [nameParam],
        get: op('Live numbers for the console charts: cumulative requests, latency histogram, errors by code, in flight per route', {
          '200': { description: 'this gateway\'s numbers (summed over its workers)', ...json('EndpointStats') },
          '404': errorResponse('ADM_NOT_FOUND'),
        }),
      },
      '/v1/endpoints/{name}/tokens/{jti}': {
        parameters: [nameParam, jtiParam],
        delete: op('Revoke a token everywhere within 1 s', { '204': { description: 'revoked' }, '404': errorResponse('ADM_NOT_FOUND') }),
      },
      '/v1/controller': {
        get: op('Which gateway instance leads the model-service controller', { '200': { description: 'leadership', ...json('Controller') } }),
      },
      '/v1/services': {
        post: op('Create a model service', { '201': { description: 'created', ...json('Service') }, '409': errorResponse('ADM_CONFLICT: name taken') }, body('ServiceCreate')),
        get: op('List services', { '200': { description: 'services', ...json('ServiceList') } }),
      },
      '/v1/services/validate': {
        post: op(
          'Run one replica to healthy or failed; streams NDJSON log lines and a final result',
          { '200': { description: 'application/x-ndjson stream of {type:"log",line} then {type:"result",…}', content: { 'application/x-ndjson': { schema: { type: 'string' } } } } },
          body('ServiceValidate'),
        ),
      },
      '/v1/services/{name}': {
        parameters: [nameParam],
        get: op('One service with its replicas', { '200': { description: 'the service', ...json('Service') }, '404': errorResponse('ADM_NOT_FOUND') }, {
          parameters: [{ name: 'logs', in: 'query', required: false, schema: { type: 'integer', minimum: 0, maximum: 500 } }],
        }),
        patch: op('Change replicas/public/env/resources (rolling) or autoscaling (null: fixed replicas again)', { '200': { description: 'the service', ...json('Service') }, '404': errorResponse('ADM_NOT_FOUND') }, body('ServicePatch')),
        delete: op('Drain and stop a service', { '204': { description: 'stopped' }, '404': errorResponse('ADM_NOT_FOUND') }),
      },
      '/v1/services/{name}/events': {
        parameters: [nameParam],
        get: op('Recent scaling decisions, replica restarts and health changes, newest first (at most 200)', { '200': { description: 'events', ...json('ServiceEvents') }, '404': errorResponse('ADM_NOT_FOUND') }, {
          parameters: [{ name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 200 } }],
        }),
      },
      '/v1/services/{name}/errors/clear': {
        parameters: [nameParam],
        post: op('Clear failed routes, re-read the definition and retry', { '200': { description: 'the service', ...json('Service') }, '404': errorResponse('ADM_NOT_FOUND') }),
      },
    },
  };
}

let cached: string | null = null;

/** The document as JSON text, built on first use. */
export function openApiJson(): string {
  cached ??= JSON.stringify(buildOpenApi());
  return cached;
}
