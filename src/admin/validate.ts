import type { Context } from 'hono';
import type { z } from 'zod';
import { GatewayError, type FieldError } from '../errors/gateway-error.js';

export function zodDetails(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => {
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') message = `unknown field(s): ${issue.keys.join(', ')}`;
    return { field: issue.path.length > 0 ? issue.path.join('.') : 'body', message };
  });
}

/** Parses the JSON body of an admin call with a zod schema; ADM_INVALID names every bad field. */
export async function parseJsonBody<S extends z.ZodType>(c: Context, schema: S, opts: { optional?: boolean } = {}): Promise<z.infer<S>> {
  const text = await c.req.text();
  let value: unknown;
  if (text.trim() === '') {
    if (!opts.optional) throw new GatewayError('ADM_INVALID', { details: [{ field: 'body', message: 'a JSON object is required' }] });
    value = {};
  } else {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new GatewayError('ADM_INVALID', { details: [{ field: 'body', message: `not valid JSON: ${(err as Error).message}` }] });
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new GatewayError('ADM_INVALID', { details: [{ field: 'body', message: 'must be a JSON object' }] });
  }
  const result = schema.safeParse(value);
  if (!result.success) throw new GatewayError('ADM_INVALID', { details: zodDetails(result.error) });
  return result.data;
}

/** Validates a path parameter; ADM_INVALID names it. */
export function parseParam<S extends z.ZodType>(schema: S, field: string, value: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new GatewayError('ADM_INVALID', { details: [{ field, message: result.error.issues[0]?.message ?? 'invalid' }] });
  return result.data;
}
