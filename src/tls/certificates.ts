import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, readdirSync, watch, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';

/**
 * The listener's certificates: a default pair (TLS_CERT_FILE + TLS_KEY_FILE) and optional
 * SNI pairs from a folder (TLS_CERTS_DIR: NAME.crt + NAME.key). Each pair is checked when read
 * — parseable, key matching the certificate — so a bad file is one clear line at start-up, and
 * on a reload the previous certificates stay in use. New handshakes pick up a reload; open
 * connections keep the certificate they were made with (nothing is dropped).
 */

export class TlsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
  /** Setting names used in error messages (TLS_CERT_FILE / ADMIN_TLS_CERT_FILE …). */
  certSetting?: string;
  keySetting?: string;
  certsDir?: string;
}

export interface CertificatePair {
  cert: string;
  key: string;
  /** DNS names (and `*.` wildcards) the certificate covers, lower case. */
  names: string[];
  notAfter: Date;
}

function readText(path: string, setting: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new TlsConfigError(`${setting}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Reads and checks one certificate + key pair. */
export function loadPair(certFile: string, keyFile: string, certSetting = 'TLS_CERT_FILE', keySetting = 'TLS_KEY_FILE'): CertificatePair {
  const cert = readText(certFile, certSetting);
  const key = readText(keyFile, keySetting);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new TlsConfigError(`${certSetting}: ${certFile} is not a PEM certificate`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new TlsConfigError(`${keySetting}: ${keyFile} is not a PEM private key (an encrypted key is not supported)`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(`${keySetting}: ${keyFile} does not match the certificate in ${certSetting} (${certFile})`);
  }
  return { cert, key, names: certificateNames(x509), notAfter: new Date(x509.validTo) };
}

function certificateNames(x509: X509Certificate): string[] {
  const names: string[] = [];
  for (const part of (x509.subjectAltName ?? '').split(',')) {
    const entry = part.trim();
    if (entry.startsWith('DNS:')) names.push(entry.slice(4).toLowerCase());
  }
  if (names.length === 0) {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject);
    if (cn) names.push(cn[1].trim().toLowerCase());
  }
  return names;
}

interface SniEntry {
  context: SecureContext;
  pair: CertificatePair;
}

export class CertificateStore {
  readonly #files: CertificateFiles;
  #default!: CertificatePair;
  /** Exact names, then `*.suffix` wildcards keyed by the suffix (".example.com"). */
  #exact = new Map<string, SniEntry>();
  #wildcard = new Map<string, SniEntry>();
  #watchers: FSWatcher[] = [];
  /** What was loaded, to tell a real change from a write of the same bytes. */
  #fingerprint = '';
  #reloadTimer: NodeJS.Timeout | null = null;

  constructor(files: CertificateFiles) {
    this.#files = files;
    this.#load();
  }

  get defaultPair(): CertificatePair {
    return this.#default;
  }

  /** Names served by SNI pairs (for logs and tests). */
  get sniNames(): string[] {
    return [...this.#exact.keys(), ...[...this.#wildcard.keys()].map((s) => `*${s}`)];
  }

  #load(): void {
    const { certFile, keyFile, certSetting = 'TLS_CERT_FILE', keySetting = 'TLS_KEY_FILE', certsDir } = this.#files;
    const pair = loadPair(certFile, keyFile, certSetting, keySetting);
    const exact = new Map<string, SniEntry>();
    const wildcard = new Map<string, SniEntry>();
    if (certsDir) {
      let files: string[];
      try {
        files = readdirSync(certsDir);
      } catch (err) {
        throw new TlsConfigError(`TLS_CERTS_DIR: cannot read ${certsDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      for (const file of files.filter((f) => f.endsWith('.crt')).sort()) {
        const name = basename(file, '.crt');
        const keyPath = join(certsDir, `${name}.key`);
        if (!files.includes(`${name}.key`)) throw new TlsConfigError(`TLS_CERTS_DIR: ${file} has no matching ${name}.key`);
        const sni = loadPair(join(certsDir, file), keyPath, 'TLS_CERTS_DIR', 'TLS_CERTS_DIR');
        const entry: SniEntry = { pair: sni, context: createSecureContext({ cert: sni.cert, key: sni.key }) };
        const names = sni.names.length > 0 ? sni.names : [name.toLowerCase()];
        for (const n of names) {
          if (n.startsWith('*.')) wildcard.set(n.slice(1), entry);
          else exact.set(n, entry);
        }
      }
    }
    this.#default = pair;
    this.#exact = exact;
    this.#wildcard = wildcard;
    this.#fingerprint = [pair.cert, pair.key, ...[...exact.values(), ...wildcard.values()].map((e) => e.pair.cert)].join('\n');
  }

  /** SNI: the pair whose names cover `servername`, or undefined for the default one. */
  contextFor(servername: string): SecureContext | undefined {
    if (!servername) return undefined;
    const name = servername.toLowerCase();
    const hit = this.#exact.get(name);
    if (hit) return hit.context;
    const dot = name.indexOf('.');
    return dot === -1 ? undefined : this.#wildcard.get(name.slice(dot))?.context;
  }

  /** For `tls.Server` / `http2.createSecureServer`: resolve SNI against the current pairs. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.contextFor(servername));
  };

  /**
   * Re-reads every file when one changes. `onReload` gets the new default pair to install; a
   * failed reload (a half-written pair, a key that does not match) keeps the old certificates
   * and reports why; the next change tries again.
   */
  watch(onReload: (pair: CertificatePair) => void, onError: (err: Error) => void): void {
    const { certFile, keyFile, certsDir } = this.#files;
    const reload = () => {
      this.#reloadTimer = null;
      const before = this.#fingerprint;
      try {
        this.#load();
      } catch (err) {
        onError(err as Error);
        return;
      }
      // Folder watches also fire for unrelated files and for writes that change nothing.
      if (this.#fingerprint !== before) onReload(this.#default);
    };
    const watched = new Map<string, (name: string) => boolean>();
    const add = (dir: string, relevant: (name: string) => boolean) => {
      const previous = watched.get(dir);
      watched.set(dir, previous ? (name) => previous(name) || relevant(name) : relevant);
    };
    add(dirnameOf(certFile), (name) => name === basename(certFile));
    add(dirnameOf(keyFile), (name) => name === basename(keyFile));
    if (certsDir) add(certsDir, (name) => name.endsWith('.crt') || name.endsWith('.key'));
    // Watch the folders, not the files: a rename-into-place (the usual atomic update, and how
    // Kubernetes updates a mounted Secret) replaces the inode a file watch is attached to.
    for (const [dir, relevant] of watched) {
      try {
        const watcher = watch(dir, { persistent: false }, (_event, name) => {
          if (name !== null && !relevant(String(name)) && !String(name).startsWith('..')) return;
          if (this.#reloadTimer) clearTimeout(this.#reloadTimer);
          // Debounced: editors and cert-manager write a pair in several steps.
          this.#reloadTimer = setTimeout(reload, 200);
          this.#reloadTimer.unref();
        });
        watcher.on('error', (err) => onError(err));
        this.#watchers.push(watcher);
      } catch (err) {
        onError(err as Error);
      }
    }
  }

  close(): void {
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    if (this.#reloadTimer) clearTimeout(this.#reloadTimer);
    this.#reloadTimer = null;
  }
}

function dirnameOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? (i === 0 ? '/' : '.') : path.slice(0, i);
}

/** UPSTREAM_CA_FILE: PEM certificates to trust for https:// routes (checked at start-up). */
export function readCaFile(path: string, setting = 'UPSTREAM_CA_FILE'): string {
  const pem = readText(path, setting);
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new TlsConfigError(`${setting}: ${path} holds no PEM certificate`);
  try {
    new X509Certificate(pem);
  } catch {
    throw new TlsConfigError(`${setting}: ${path} is not a readable PEM certificate`);
  }
  return pem;
}
