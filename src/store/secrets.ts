import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Settings } from '../config/settings.js';
import type { Logger } from '../obs/logger.js';
import { createFileExclusive, ensureDataDir } from './durable-file.js';

/**
 * The admin token and the token-signing secret. Explicit settings win; otherwise they are
 * generated once and kept in DATA_DIR (0600), because a secret that changed on restart would
 * invalidate every token already handed out and lock operators out of the admin API.
 */

export interface ResolvedSecrets {
  adminToken: string;
  tokenSecret: string;
  /** True when the value was created by this start (the caller prints a new admin token once). */
  generated: { adminToken: boolean; tokenSecret: boolean };
}

/** Where each secret is saved in DATA_DIR, and the shortest value accepted there. */
export const SAVED_SECRETS = {
  adminToken: { file: 'admin-token', minLength: 16 },
  tokenSecret: { file: 'token-secret', minLength: 32 },
} as const;
export type SavedSecretName = keyof typeof SAVED_SECRETS;

export class SecretFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretFileError';
  }
}

function generate(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The secret saved in `dataDir`, or null when none is saved. The one reader, for the gateway
 * and the CLI alike: a file that exists but cannot be read, or is too short, is an error.
 */
export function readSavedSecret(dataDir: string, name: SavedSecretName): string | null {
  const { file: base, minLength } = SAVED_SECRETS[name];
  const file = join(dataDir, base);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new SecretFileError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const value = text.trim();
  if (value.length < minLength) {
    // Never replaced silently: a new secret would invalidate every issued token.
    throw new SecretFileError(`${file}: holds ${value.length} characters, at least ${minLength} needed. Fix it, or delete it to have a new one generated (tokens signed with the old one stop working).`);
  }
  return value;
}

async function loadOrCreate(dir: string, name: SavedSecretName): Promise<{ value: string; generated: boolean }> {
  const existing = readSavedSecret(dir, name);
  if (existing !== null) return { value: existing, generated: false };
  const value = generate();
  if (await createFileExclusive(join(dir, SAVED_SECRETS[name].file), `${value}\n`)) return { value, generated: true };
  // Another process created it first: use theirs.
  return { value: readSavedSecret(dir, name) ?? value, generated: false };
}

export async function resolveSecrets(settings: Settings, logger: Logger): Promise<ResolvedSecrets> {
  const persist = !settings.ephemeral && settings.DATA_DIR !== '';
  if (persist && (!settings.ADMIN_TOKEN || !settings.TOKEN_SECRET)) ensureDataDir(settings.DATA_DIR, logger);

  async function one(explicit: string | undefined, name: SavedSecretName) {
    if (explicit) return { value: explicit, generated: false };
    if (!persist) return { value: generate(), generated: true };
    return loadOrCreate(settings.DATA_DIR, name);
  }

  const admin = await one(settings.ADMIN_TOKEN, 'adminToken');
  const secret = await one(settings.TOKEN_SECRET, 'tokenSecret');
  if (!persist && (admin.generated || secret.generated)) {
    logger.warn('generated secrets are not saved (ephemeral): they change on every start');
  }
  return {
    adminToken: admin.value,
    tokenSecret: secret.value,
    generated: { adminToken: admin.generated, tokenSecret: secret.generated },
  };
}
