/**
 * Open-loop fixed-rate client for the pinned bench, run as its own process (pinned to the load
 * CPU): `URL RATE SECONDS [Header: value ...]`. Two seconds of warm-up at the same rate, then
 * SECONDS measured; prints `{"p50":ms,"p99":ms,"errors":n}`.
 */
import { fixedRate } from './lib.js';

const [url, rateArg, secondsArg, ...lines] = process.argv.slice(2);
const u = new URL(url);
const headers: Record<string, string> = {};
for (const line of lines) {
  const i = line.indexOf(':');
  if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
}
const rate = Number(rateArg);
await fixedRate(u.origin, headers, u.pathname, rate, 2, 64);
const r = await fixedRate(u.origin, headers, u.pathname, rate, Number(secondsArg), 64);
process.stdout.write(`${JSON.stringify({ p50: r.p50, p99: r.p99, errors: r.errors })}\n`);
process.exit(0);
