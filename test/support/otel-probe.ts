/**
 * Starts a gateway in this process with OTEL_EXPORTER_OTLP_ENDPOINT = argv[2] (or unset), then
 * prints how many OpenTelemetry SDK/exporter modules were loaded (not @opentelemetry/api, which
 * prom-client loads anyway), and stops. Used by test/integration/ops/tracing.test.ts.
 */
import { createRequire } from 'node:module';
import { loadSettings } from '../../src/config/settings.js';
import { silentLogger } from '../../src/obs/logger.js';
import { startGateway } from '../../src/compose.js';

const settings = loadSettings({
  env: {
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: '0',
    ADMIN_PORT: '0',
    ADMIN_TOKEN: 'probe-admin-token-0123456789',
    TOKEN_SECRET: 'probe-token-secret-0123456789abcdef0123456789',
    DATA_DIR: '',
    CONTROLLER_ENABLED: 'false',
    OTEL_EXPORTER_OTLP_ENDPOINT: process.argv[2] ?? '',
  },
});
const running = await startGateway(settings, silentLogger());
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/@opentelemetry/') && !k.includes('/@opentelemetry/api/'));
process.stdout.write(`${loaded.length}\n`);
await running.shutdown();
process.exit(0);
