import { isV4, parseIpInto } from './ip-address.js';

/**
 * A compiled list of CIDRs (IPv4 and IPv6; a bare address is a /32 or /128). IPv4 CIDRs are
 * stored as IPv4-mapped IPv6 prefixes, so `::ffff:10.1.2.3` matches `10.0.0.0/8`.
 * Compiled once per route table (or at boot for TRUSTED_PROXIES); `matches` is an indexed loop.
 */
export class CidrList {
  /** 4 words per entry: the masked network, then the mask. */
  readonly #nets: Uint32Array;
  readonly #masks: Uint32Array;
  readonly size: number;

  private constructor(nets: Uint32Array, masks: Uint32Array) {
    this.#nets = nets;
    this.#masks = masks;
    this.size = nets.length / 4;
  }

  /** Compiles valid CIDRs; throws with the index and problem of the first bad one. */
  static compile(cidrs: readonly string[]): CidrList {
    const nets = new Uint32Array(cidrs.length * 4);
    const masks = new Uint32Array(cidrs.length * 4);
    const words = new Uint32Array(4);
    for (let i = 0; i < cidrs.length; i++) {
      const problem = parseCidrInto(cidrs[i], words, masks, i * 4);
      if (problem !== null) throw new CidrError(i, cidrs[i], problem);
      for (let w = 0; w < 4; w++) nets[i * 4 + w] = (words[w] & masks[i * 4 + w]) >>> 0;
    }
    return new CidrList(nets, masks);
  }

  /** True when the parsed address (4 words from parseIpInto) is inside any entry. */
  matchesWords(addr: Uint32Array): boolean {
    const nets = this.#nets;
    const masks = this.#masks;
    for (let i = 0; i < nets.length; i += 4) {
      if (
        ((addr[0] & masks[i]) >>> 0) === nets[i] &&
        ((addr[1] & masks[i + 1]) >>> 0) === nets[i + 1] &&
        ((addr[2] & masks[i + 2]) >>> 0) === nets[i + 2] &&
        ((addr[3] & masks[i + 3]) >>> 0) === nets[i + 3]
      ) {
        return true;
      }
    }
    return false;
  }

  /** Parses and matches; an unparseable address matches nothing. */
  matches(address: string): boolean {
    return parseIpInto(address, SCRATCH) && this.matchesWords(SCRATCH);
  }
}

const SCRATCH = new Uint32Array(4);

export class CidrError extends Error {
  constructor(
    readonly index: number,
    readonly value: string,
    readonly problem: string,
  ) {
    super(`${JSON.stringify(value)}: ${problem}`);
    this.name = 'CidrError';
  }
}

/** Writes the address words and the mask (at masks[offset..offset+4)); returns a problem or null. */
function parseCidrInto(cidr: string, words: Uint32Array, masks: Uint32Array, offset: number): string | null {
  if (typeof cidr !== 'string' || cidr.length === 0) return 'must be an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)';
  const slash = cidr.indexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  if (!parseIpInto(address, words) || address.charCodeAt(0) === 91) {
    return 'must be an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)';
  }
  const v4Literal = address.indexOf(':') < 0;
  const maxPrefix = v4Literal ? 32 : 128;
  let prefix = maxPrefix;
  if (slash >= 0) {
    const text = cidr.slice(slash + 1);
    if (!/^\d{1,3}$/.test(text) || Number(text) > maxPrefix) return `prefix length must be 0-${maxPrefix}`;
    prefix = Number(text);
  }
  let bits = v4Literal ? 96 + prefix : prefix;
  // An IPv4 /0 would otherwise cover only IPv4-mapped space; that is what an operator means.
  if (v4Literal && !isV4(words)) return 'must be an IP address or CIDR';
  for (let w = 0; w < 4; w++) {
    const take = Math.max(0, Math.min(32, bits));
    masks[offset + w] = take === 0 ? 0 : take === 32 ? 0xffffffff : (0xffffffff << (32 - take)) >>> 0;
    bits -= take;
  }
  return null;
}

/** Validates CIDR strings for the admin API: index and message of the first bad one, or null. */
export function checkCidrs(cidrs: readonly string[]): { index: number; message: string } | null {
  try {
    CidrList.compile(cidrs);
    return null;
  } catch (err) {
    if (err instanceof CidrError) return { index: err.index, message: err.problem };
    throw err;
  }
}
