import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { LeaseLeadership } from '../../src/controller/leadership.js';
import { silentLogger } from '../../src/obs/logger.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { eventually } from '../support/eventually.js';

function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 20_000): Promise<NonNullable<T>> {
  return eventually(probe, { what, timeoutMs, stepMs: 100 });
}

/** The lease and its fence on a real Redis: one holder, takeover after expiry, stale writes refused. */

const logger = silentLogger();
const stores: RedisStore[] = [];

async function store(prefix: string): Promise<RedisStore> {
  const s = new RedisStore({ url: inject('redisUrl'), prefix, logger });
  stores.push(s);
  await s.start();
  return s;
}

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

const table = (routes: { id: string; url: string }[]) => () => ({ id: 'e1', name: 'svc', public: false, routes: routes.map((r) => ({ ...r, weight: 1, status: 'healthy' as const })), created_at: new Date().toISOString() });

describe('controller lease (Redis)', () => {
  it('is held by one instance; a new term gets a larger fencing number and fences the old holder out', async () => {
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    const s = await store(prefix);
    const first = await s.acquireLease('a', 500);
    expect(first).toMatch(/^\d+:a$/);
    expect(await s.acquireLease('b', 500)).toBeNull();
    // Renewal by the holder only.
    expect(await s.renewLease(first!, 500)).toBe(true);
    expect(await s.renewLease(first!.replace(':a', ':b'), 500)).toBe(false);
    // The holder stalls past its lease: another instance takes it with a larger number.
    const second = await waitFor(() => s.acquireLease('b', 5_000), 'lease expired and taken', 5_000);
    expect(Number(second.split(':')[0])).toBeGreaterThan(Number(first!.split(':')[0]));
    expect(await s.renewLease(first!, 500)).toBe(false);

    // Fenced writes: the current holder writes, the stale one is refused and changes nothing.
    await s.updateEndpoint('svc', table([{ id: 'r1', url: 'http://127.0.0.1:1' }]), { fence: second });
    await expect(s.updateEndpoint('svc', table([{ id: 'old', url: 'http://127.0.0.1:2' }]), { fence: first! })).rejects.toMatchObject({ code: 'ADM_CONFLICT' });
    expect(JSON.parse((await s.getEndpointRaw('svc'))!).routes.map((r: { id: string }) => r.id)).toEqual(['r1']);
    await s.putService({ name: 'svc', spec: {}, updated_at: new Date().toISOString() });
    expect(await s.putServiceStatus('svc', { ok: 1 }, second)).toBe(true);
    await expect(s.putServiceStatus('svc', { ok: 2 }, first!)).rejects.toMatchObject({ code: 'ADM_CONFLICT' });
    expect(await s.getServiceStatus('svc')).toEqual({ ok: 1 });
    // Status goes with the record.
    await s.deleteService('svc');
    expect(await s.getServiceStatus('svc')).toBeNull();

    await s.releaseLease(first!); // not ours any more: no effect
    expect((await s.readLease())?.value).toBe(second);
    await s.releaseLease(second);
    expect(await s.readLease()).toBeNull();
  });

  it('LeaseLeadership: exactly one leads; stopping hands over at once; the other steps in', async () => {
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    const a = new LeaseLeadership({ store: await store(prefix), logger, ttlMs: 2_000, instance: 'inst-a' });
    const b = new LeaseLeadership({ store: await store(prefix), logger, ttlMs: 2_000, instance: 'inst-b' });
    const changes: string[] = [];
    a.onChange((l) => changes.push(`a:${l}`));
    b.onChange((l) => changes.push(`b:${l}`));
    a.start();
    await waitFor(() => (a.isLeader ? true : null), 'a leads', 5_000);
    b.start();
    // Several renew rounds: b never leads while a renews.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(b.isLeader).toBe(false);
    expect(a.fence).toMatch(/:inst-a$/);
    expect(await b.info()).toMatchObject({ mode: 'lease', is_leader: false, leader: 'inst-a' });
    await a.stop();
    expect(a.isLeader).toBe(false);
    await waitFor(() => (b.isLeader ? true : null), 'b leads', 5_000);
    expect(await b.info()).toMatchObject({ is_leader: true, leader: 'inst-b' });
    expect(changes).toEqual(['a:true', 'a:false', 'b:true']);
    await b.stop();
  });
});
