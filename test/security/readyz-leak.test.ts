import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TEST_ADMIN_TOKEN, type TestGateway } from '../support/gateway.js';
import { closedPort } from '../support/upstream.js';
import { eventually } from '../support/eventually.js';

/**
 * Issue 21, finding 6: the public /readyz must not tell a stranger where the store lives
 * (Redis host, port, credentials, or the data folder). The detailed reason stays on the
 * admin listener (and in the logs).
 */
describe('security: public /readyz names no internal address', () => {
  let gw: TestGateway;
  let redisPort: number;

  beforeAll(async () => {
    redisPort = await closedPort();
    gw = await startTestGateway({ REDIS_URL: `redis://:hunter2-password@127.0.0.1:${redisPort}/0` });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('says the store is down without saying where', async () => {
    const res = await fetch(`${gw.url}/readyz`);
    expect(res.status).toBe(503);
    const text = await res.text();
    const body = JSON.parse(text);
    expect(body.store).toBe('down');
    expect(typeof body.reason).toBe('string');
    for (const secret of ['127.0.0.1', String(redisPort), 'hunter2', 'Redis at', 'ECONNREFUSED', 'redis://']) expect(text).not.toContain(secret);
  });

  it('the admin listener keeps the detailed reason', async () => {
    const body = await eventually(async () => {
      const res = await fetch(`${gw.adminUrl}/healthz`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
      const json = (await res.json()) as { store_up?: boolean; store_reason?: string };
      if (!json.store_reason) throw new Error('no reason yet');
      return json;
    });
    expect(body.store_up).toBe(false);
    expect(body.store_reason).toContain(String(redisPort));
    expect(JSON.stringify(body)).not.toContain('hunter2');
  });
});
