import { randomUUID } from 'node:crypto';
import { silentLogger } from '../../src/obs/logger.js';
import { patchEndpoint, putEndpoint } from '../../src/control/endpoint-ops.js';
import { MemoryStore } from '../../src/store/memory-store.js';

/**
 * Child process for the crash-loop test: opens a durable MemoryStore and writes forever,
 * printing one JSON line per acknowledged write. The parent SIGKILLs it at a random moment and
 * checks that every acknowledged write survived. Usage: tsx store-writer-child.ts DATA_DIR.
 */

const dataDir = process.argv[2];
/** Orders this run's service writes after every earlier run's. */
const gen = Date.now();
const store = await MemoryStore.open({ dataDir, logger: silentLogger(), compactBytes: 8 * 1024 });
const ack = (line: object): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};
ack({ t: 'ready' });

for (const name of ['e0', 'e1', 'e2']) {
  if ((await store.getEndpointRaw(name)) === null) await putEndpoint(store, name, {});
}

let i = 0;
for (;;) {
  const batch: Promise<void>[] = [];
  for (let k = 0; k < 4; k++, i++) {
    const n = i;
    switch (n % 5) {
      case 0: {
        const name = `e${n % 3}`;
        batch.push(patchEndpoint(store, name, { routes: [{ url: `http://127.0.0.1:${1000 + (n % 5000)}` }] }).then((t) => ack({ t: 'ep', name, version: t.version })));
        break;
      }
      case 1: {
        const jti = randomUUID();
        const rec = { jti, endpoint: `e${n % 3}`, endpoint_id: randomUUID(), sub: 's', exp: Math.floor(Date.now() / 1000) + 3600, created_at: new Date().toISOString() };
        batch.push(store.putToken(rec).then(() => ack({ t: 'token', jti })));
        break;
      }
      case 2: {
        const jti = randomUUID();
        batch.push(store.revokeToken(jti, Math.floor(Date.now() / 1000) + 3600).then(() => ack({ t: 'revoke', jti })));
        break;
      }
      case 3: {
        const name = `svc-${n % 7}`;
        batch.push(store.putService({ name, spec: { gen, n, pad: 'x'.repeat(200) }, updated_at: new Date().toISOString() }).then(() => ack({ t: 'svc', name, gen, n })));
        break;
      }
      default:
        // Churn: create and delete an endpoint that is not checked, to put deletes in the journal.
        batch.push(
          (n % 2 === 0 ? putEndpoint(store, 'tmp', {}).then(() => undefined) : store.deleteEndpoint('tmp').then(() => undefined)).then(() =>
            ack({ t: 'tmp' }),
          ),
        );
    }
  }
  await Promise.all(batch);
}
