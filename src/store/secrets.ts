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

export const ADMIN_TOKEN_FILE = 'admin-token';
export const TOKEN_SECRET_FILE = 'token-secret';

export class SecretFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretFileError';
  }
}

function generate(): string {
  return randomBytes(32).toString('base64url');
}

function readSecret(file: string, minLength: number): string | null {
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

async function loadOrCreate(dir: string, name: string, minLength: number): Promise<{ value: string; generated: boolean }> {
  const file = join(dir, name);
  const existing = readSecret(file, minLength);
  if (existing !== null) return { value: existing, generated: false };
  const value = generate();
  if (await createFileExclusive(file, `${value}\n`)) return { value, generated: true };
  // Another process created it first: use theirs.
  return { value: readSecret(file, minLength) ?? value, generated: false };
}

export async function resolveSecrets(settings: Settings, logger: Logger): Promise<ResolvedSecrets> {
  const persist = !settings.ephemeral && settings.DATA_DIR !== '';
  if (persist && (!settings.ADMIN_TOKEN || !settings.TOKEN_SECRET)) ensureDataDir(settings.DATA_DIR, logger);

  async function one(explicit: string | undefined, file: string, minLength: number) {
    if (explicit) return { value: explicit, generated: false };
    if (!persist) return { value: generate(), generated: true };
    return loadOrCreate(settings.DATA_DIR, file, minLength);
  }

  const admin = await one(settings.ADMIN_TOKEN, ADMIN_TOKEN_FILE, 16);
  const secret = await one(settings.TOKEN_SECRET, TOKEN_SECRET_FILE, 32);
  if (!persist && (admin.generated || secret.generated)) {
    logger.warn('generated secrets are not saved (ephemeral): they change on every start');
  }
  return {
    adminToken: admin.value,
    tokenSecret: secret.value,
    generated: { adminToken: admin.generated, tokenSecret: secret.generated },
  };
}
