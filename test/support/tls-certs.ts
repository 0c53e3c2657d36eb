import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A throwaway certificate authority for TLS tests, made with the system's `openssl` (Debian's
 * package; .ci/run installs it when missing). Every file lives in one temp folder that
 * `remove()` deletes.
 */
export interface TestCa {
  dir: string;
  caFile: string;
  caPem: string;
  /** Issues a certificate for `names` (DNS names and IP addresses); returns its file paths. */
  issue(basename: string, names: string[], opts?: { days?: number; dir?: string }): { certFile: string; keyFile: string; cert: string; key: string };
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed (is Debian's openssl installed?): ${stderr.trim().split('\n').slice(-2).join(' | ')}`);
  }
}

export function createTestCa(name = 'modelgate test CA'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'mg-tls-'));
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${name}`], dir);
  const caFile = join(dir, 'ca.crt');
  let serial = 1;
  return {
    dir,
    caFile,
    caPem: readFileSync(caFile, 'utf8'),
    issue(basename, names, opts = {}) {
      const out = opts.dir ?? dir;
      const key = join(out, `${basename}.key`);
      const csr = join(dir, `${basename}-${serial}.csr`);
      const cert = join(out, `${basename}.crt`);
      const ext = join(dir, `${basename}-${serial}.ext`);
      const san = names.map((n) => (/^[0-9.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      writeFileSync(ext, `subjectAltName=${san}\n`);
      openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${names[0]}`], dir);
      openssl(
        ['x509', '-req', '-in', csr, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(1000 + serial++), '-out', cert, '-days', String(opts.days ?? 2), '-extfile', ext],
        dir,
      );
      return { certFile: cert, keyFile: key, cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
