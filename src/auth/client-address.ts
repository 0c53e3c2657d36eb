import type { CidrList } from './cidr.js';
import { parseIpInto } from './ip-address.js';

/** Strips a port (`1.2.3.4:80`, `[::1]:80`) and brackets from one X-Forwarded-For entry. */
function entryAddress(entry: string): string {
  if (entry.charCodeAt(0) === 91) {
    const close = entry.indexOf(']');
    return close > 0 ? entry.slice(1, close) : entry;
  }
  const colon = entry.indexOf(':');
  if (colon > 0 && entry.indexOf(':', colon + 1) < 0) return entry.slice(0, colon);
  return entry;
}

const HOP = new Uint32Array(4);

/**
 * Finds the client's address: the socket peer, unless the peer is a trusted proxy
 * (TRUSTED_PROXIES), in which case X-Forwarded-For is walked from the right, skipping trusted
 * proxies, and the first untrusted hop is the client (all trusted: the leftmost entry).
 */
export class ClientAddressResolver {
  readonly #trusted: CidrList | null;

  constructor(trusted: CidrList | null) {
    this.#trusted = trusted !== null && trusted.size > 0 ? trusted : null;
  }

  /** Writes the client's address words into `out`; false when it cannot be determined. */
  resolveInto(remoteAddress: string | undefined, xForwardedFor: string | undefined, out: Uint32Array): boolean {
    if (remoteAddress === undefined || !parseIpInto(remoteAddress, out)) return false;
    const trusted = this.#trusted;
    if (trusted === null || xForwardedFor === undefined || !trusted.matchesWords(out)) return true;
    let end = xForwardedFor.length;
    while (end > 0) {
      const comma = xForwardedFor.lastIndexOf(',', end - 1);
      const entry = xForwardedFor.slice(comma + 1, end).trim();
      end = comma < 0 ? 0 : comma;
      if (entry.length === 0) continue;
      if (!parseIpInto(entryAddress(entry), HOP)) return false;
      out[0] = HOP[0];
      out[1] = HOP[1];
      out[2] = HOP[2];
      out[3] = HOP[3];
      if (!trusted.matchesWords(out)) return true;
    }
    return true;
  }
}
