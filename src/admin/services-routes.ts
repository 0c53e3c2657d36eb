import { z } from 'zod';
import type { ServiceController, ValidateEvent } from '../controller/service-controller.js';
import { createServiceSchema, patchServiceSchema, validateServiceSchema } from '../controller/service-spec.js';
import { GatewayError } from '../errors/gateway-error.js';
import { endpointNameSchema } from '../schema/route-table.js';
import type { AdminMount } from './mount.js';
import { parseJsonBody, parseParam } from './validate.js';

/**
 * The services API: model services run by the local controller (docs/model-services.md).
 * Each service is also an endpoint of the same name, served and protected like any other.
 */

const logLinesSchema = z.coerce.number().int().min(0).max(500);
const eventLimitSchema = z.coerce.number().int().min(1).max(200);

export function servicesRoutes(controller: ServiceController): AdminMount {
  return (app) => {
    // Before `/:name` routes so "validate" is never read as a service name.
    app.post('/v1/services/validate', async (c) => {
      const body = await parseJsonBody(c, validateServiceSchema);
      const abort = new AbortController();
      const encoder = new TextEncoder();
      const stream = new ReadableStream<Uint8Array>({
        start(out) {
          let open = true;
          const emit = (event: ValidateEvent) => {
            if (!open) return;
            try {
              out.enqueue(encoder.encode(`${JSON.stringify(event)}\n`));
            } catch {
              open = false;
            }
          };
          void controller
            .validate(body, emit, abort.signal)
            .catch(() => emit({ type: 'result', status: 'Finished', healthy: false, error: 'internal error while validating' }))
            .finally(() => {
              open = false;
              try {
                out.close();
              } catch {}
            });
        },
        cancel() {
          // The client went away: stop the replica now rather than at the timeout.
          abort.abort();
        },
      });
      return c.body(stream, 200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    });

    app.post('/v1/services', async (c) => {
      const body = await parseJsonBody(c, createServiceSchema);
      return c.json(await controller.create(body), 201);
    });

    app.get('/v1/services', async (c) => c.json({ services: await controller.readAll() }));

    app.get('/v1/controller', async (c) => c.json(await controller.leadership.info()));

    app.get('/v1/services/:name', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const logs = c.req.query('logs');
      return c.json(await controller.read(name, logs === undefined ? 20 : parseParam(logLinesSchema, 'logs', logs)));
    });

    app.get('/v1/services/:name/events', (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const limit = c.req.query('limit');
      return c.json({ events: controller.events(name, limit === undefined ? undefined : parseParam(eventLimitSchema, 'limit', limit)) });
    });

    app.patch('/v1/services/:name', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const body = await parseJsonBody(c, patchServiceSchema);
      return c.json(await controller.patch(name, body));
    });

    app.delete('/v1/services/:name', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      if (!(await controller.terminate(name, { drain: true }))) throw new GatewayError('ADM_NOT_FOUND', { message: `service ${name} not found` });
      return c.body(null, 204);
    });

    app.post('/v1/services/:name/errors/clear', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      return c.json(await controller.clearErrors(name));
    });
  };
}
