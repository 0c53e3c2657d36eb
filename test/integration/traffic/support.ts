import type { TestGateway } from '../../support/gateway.js';
import { metric as metricAt } from '../../support/metrics.js';

export interface ChatOptions {
  token?: string;
  id?: string;
  stream?: boolean;
  includeUsage?: boolean;
  usage?: string;
  tokens?: number;
  delayMs?: number;
  maxTokens?: number;
  signal?: AbortSignal;
  extraHeaders?: Record<string, string>;
}

/** A chat completion through the gateway's /e/{name}/ path; returns status, headers and text. */
export async function chat(gwUrl: string, endpoint: string, opts: ChatOptions = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(opts.extraHeaders ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.id) headers['x-test-id'] = opts.id;
  if (opts.usage) headers['x-test-usage'] = opts.usage;
  if (opts.tokens !== undefined) headers['x-test-tokens'] = String(opts.tokens);
  if (opts.delayMs !== undefined) headers['x-test-delay-ms'] = String(opts.delayMs);
  const body: Record<string, unknown> = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
  if (opts.stream) body.stream = true;
  if (opts.includeUsage) body.stream_options = { include_usage: true };
  if (opts.maxTokens !== undefined) body.max_tokens = opts.maxTokens;
  const res = await fetch(`${gwUrl}/e/${endpoint}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify(body), signal: opts.signal });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

export async function issueToken(gw: TestGateway, endpoint: string, body: Record<string, unknown> = {}): Promise<string> {
  const res = await gw.admin('POST', `/v1/endpoints/${endpoint}/tokens`, { ttl_seconds: 3600, ...body });
  if (res.status !== 201) throw new Error(`token: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.token as string;
}

/** A metric's value from /metrics (sum over label sets matching `labels`). */
export function metric(gw: TestGateway, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricAt(gw.adminUrl, name, labels);
}
