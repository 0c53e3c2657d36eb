/**
 * A small JSON Schema (2020-12 subset) checker for validating live admin responses against the
 * served OpenAPI document: $ref (local), type (incl. null), properties, required,
 * additionalProperties, items, enum, const, anyOf/oneOf/allOf, min/max, lengths, pattern.
 */
type Schema = Record<string, any>;

export function checkSchema(root: Schema, schema: Schema, value: unknown, path = '$'): string[] {
  if (schema.$ref) {
    const target = (schema.$ref as string)
      .replace(/^#\//, '')
      .split('/')
      .reduce((node: any, key: string) => node?.[key], root);
    if (!target) return [`${path}: unresolved ${schema.$ref}`];
    return checkSchema(root, target, value, path);
  }
  const errors: string[] = [];
  if (schema.anyOf && !(schema.anyOf as Schema[]).some((s) => checkSchema(root, s, value, path).length === 0)) errors.push(`${path}: matches no anyOf branch`);
  if (schema.oneOf && (schema.oneOf as Schema[]).filter((s) => checkSchema(root, s, value, path).length === 0).length !== 1) errors.push(`${path}: must match exactly one oneOf branch`);
  for (const s of (schema.allOf as Schema[] | undefined) ?? []) errors.push(...checkSchema(root, s, value, path));
  if (schema.const !== undefined && value !== schema.const) errors.push(`${path}: expected ${JSON.stringify(schema.const)}`);
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) errors.push(`${path}: ${JSON.stringify(value)} not in enum`);
  if (schema.type !== undefined) {
    const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
    const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
    const ok = types.some((t) => t === actual || (t === 'integer' && typeof value === 'number' && Number.isInteger(value)));
    if (!ok) return [...errors, `${path}: expected ${types.join('|')}, got ${actual}`];
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: above ${schema.maximum}`);
  }
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) errors.push(`${path}: shorter than ${schema.minLength}`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) errors.push(`${path}: longer than ${schema.maxLength}`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) errors.push(`${path}: does not match ${schema.pattern}`);
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => errors.push(...checkSchema(root, schema.items, v, `${path}[${i}]`)));
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const key of (schema.required as string[] | undefined) ?? []) if (!(key in obj)) errors.push(`${path}.${key}: required`);
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const [key, v] of Object.entries(obj)) {
      if (props[key]) errors.push(...checkSchema(root, props[key], v, `${path}.${key}`));
      else if (schema.additionalProperties === false) errors.push(`${path}.${key}: not in the schema`);
      else if (typeof schema.additionalProperties === 'object') errors.push(...checkSchema(root, schema.additionalProperties, v, `${path}.${key}`));
    }
  }
  return errors;
}

/** Checks a live response against the document: the status must be declared, the body must fit. */
export function checkResponse(doc: Schema, template: string, method: string, status: number, body: unknown): string[] {
  const op = doc.paths?.[template]?.[method.toLowerCase()];
  if (!op) return [`${method} ${template}: not in the document`];
  const response = op.responses?.[String(status)];
  if (!response) return [`${method} ${template}: status ${status} not declared (${Object.keys(op.responses ?? {}).join(', ')})`];
  const schema = response.content?.['application/json']?.schema;
  if (!schema) return body === null || body === '' ? [] : typeof body === 'string' ? [] : [`${method} ${template} ${status}: a body but no JSON schema`];
  return checkSchema(doc, schema, body).map((e) => `${method} ${template} ${status}: ${e}`);
}
