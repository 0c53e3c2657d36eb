/**
 * Route-change propagation across two instances on one Redis: a change is written through
 * instance A's admin API while a request loop on instance B watches which upstream answers.
 * The delay is from the moment the admin call is sent (and, separately, acknowledged) to B's
 * first response from the new upstream.
 */
import { Pool } from 'undici';
import { percentile, spawnGateway, spawnScript } from './lib.js';

export interface PropagationResult {
  changes: number;
  fromSendP50: number;
  fromSendP99: number;
  fromAckP50: number;
  fromAckP99: number;
  max: number;
}

export async function measurePropagation(redisUrl: string, changes: number): Promise<PropagationResult> {
  const one = await spawnScript('upstream.ts', { UPSTREAM_NAME: 'one' });
  const two = await spawnScript('upstream.ts', { UPSTREAM_NAME: 'two' });
  const a = await spawnGateway({ REDIS_URL: redisUrl });
  const b = await spawnGateway({ REDIS_URL: redisUrl });
  const pool = new Pool(`http://127.0.0.1:${b.port}`, { connections: 1 });
  const urls = { one: `http://127.0.0.1:${one.port}`, two: `http://127.0.0.1:${two.port}` };
  const which = async (): Promise<string | undefined> => {
    const res = await pool.request({ path: '/', method: 'GET', headers: { host: 'prop.localhost' } });
    await res.body.dump();
    return res.headers['x-upstream'] as string | undefined;
  };
  try {
    const put = await a.admin('PUT', '/v1/endpoints/prop', { public: true, routes: [{ id: 'r', url: urls.one }] });
    if (put.status >= 300) throw new Error(`PUT prop: ${put.status} ${JSON.stringify(put.body)}`);
    while ((await which()) !== 'one') await new Promise((r) => setTimeout(r, 10));
    const fromSend: number[] = [];
    const fromAck: number[] = [];
    for (let i = 0; i < changes; i++) {
      const target = i % 2 === 0 ? 'two' : 'one';
      const t0 = performance.now();
      let tAck = 0;
      const write = a.admin('PUT', '/v1/endpoints/prop/routes', { routes: [{ id: 'r', url: urls[target] }] }).then((r) => {
        tAck = performance.now();
        if (r.status >= 300) throw new Error(`PUT routes: ${r.status} ${JSON.stringify(r.body)}`);
      });
      const deadline = t0 + 5000;
      while ((await which()) !== target) if (performance.now() > deadline) throw new Error('change did not reach instance B within 5 s');
      const seen = performance.now();
      await write;
      fromSend.push(seen - t0);
      fromAck.push(Math.max(0, seen - tAck));
    }
    return {
      changes,
      fromSendP50: percentile(fromSend, 50),
      fromSendP99: percentile(fromSend, 99),
      fromAckP50: percentile(fromAck, 50),
      fromAckP99: percentile(fromAck, 99),
      max: Math.max(...fromSend),
    };
  } finally {
    await pool.close();
    await Promise.all([a.stop(), b.stop(), one.stop(), two.stop()]);
  }
}
