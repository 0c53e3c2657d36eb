import { randomBytes } from 'node:crypto';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadPublicKeyFile, type ExternalKeySource } from '../auth/external-keys.js';
import { decodeUnverified, TokenRejected, TokenVerifier } from '../auth/verifier.js';
import { CliError, UsageError, type CliCommand, type CliIo } from './cli-io.js';
import { AdminClient } from './admin-client.js';
import { savedSecret, savedSecretHint, settingsFrom } from './cli-settings.js';

const USAGE = `usage:
  modelgate token create --endpoint NAME [--ttl 1h | --expires-at RFC3339] [--sub S]
                         [--priority 0-9] [--requests-per-minute N] [--tokens-per-minute N]
                         [--admin-url URL] [--admin-token T] [--json] [--config FILE]
      Issues a token through the admin API (ADMIN_TOKEN from the environment or
      --admin-token; URL default http://ADMIN_HOST:ADMIN_PORT). Prints the token alone on
      stdout (API_TOKEN=$(modelgate token create ...)), or the whole answer with --json.
      ADMIN_TOKEN falls back to DATA_DIR/admin-token, as the gateway saved it.
      --ttl takes "30m", "1h", "7d", "1mo" or seconds; without --ttl/--expires-at the
      server's default applies (30 days, capped by TOKEN_MAX_LIFETIME_SECONDS).

  modelgate token verify TOKEN [--endpoint-id ID] [--json] [--config FILE]
      Checks a token offline with TOKEN_SECRET or DATA_DIR/token-secret (and
      TOKEN_PUBLIC_KEY_FILE if set): prints
      the claims and the verdict; exit code 0 valid, 1 invalid. Revocation is not checked
      (it lives in the gateway's store).
`;

type ParsedArgs = { values: Record<string, string | boolean | undefined>; positionals: string[] };

function parse(args: string[], options: ParseArgsConfig['options'], allowPositionals: boolean): ParsedArgs {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true }) as ParsedArgs;
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]);
  }
}

/** The server validates ranges; this only turns the text into a number (or refuses it). */
function wholeNumber(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} must be a whole number`);
  return Number(text);
}

async function create(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(
    args,
    {
      endpoint: { type: 'string', short: 'e' },
      ttl: { type: 'string' },
      'expires-at': { type: 'string' },
      sub: { type: 'string' },
      priority: { type: 'string' },
      'requests-per-minute': { type: 'string' },
      'tokens-per-minute': { type: 'string' },
      'admin-url': { type: 'string' },
      'admin-token': { type: 'string' },
      json: { type: 'boolean' },
      config: { type: 'string' },
    },
    false,
  );
  const endpoint = values.endpoint as string | undefined;
  if (!endpoint) throw new UsageError('--endpoint NAME is required');
  if (values.ttl !== undefined && values['expires-at'] !== undefined) throw new UsageError('give --ttl or --expires-at, not both');
  const body: Record<string, unknown> = {};
  if (values.ttl !== undefined) body.duration = values.ttl as string;
  if (values.priority !== undefined) body.priority = wholeNumber('--priority', values.priority as string);
  const rpm = values['requests-per-minute'] as string | undefined;
  const tpm = values['tokens-per-minute'] as string | undefined;
  if (rpm !== undefined || tpm !== undefined) {
    body.rate_limit = {
      ...(rpm !== undefined ? { requests_per_minute: wholeNumber('--requests-per-minute', rpm) } : {}),
      ...(tpm !== undefined ? { tokens_per_minute: wholeNumber('--tokens-per-minute', tpm) } : {}),
    };
  }
  if (values['expires-at'] !== undefined) body.expires_at = values['expires-at'] as string;
  if (values.sub !== undefined) body.sub = values.sub as string;
  const client = AdminClient.from(values, io);
  const { body: parsed } = await client.call('POST', `/v1/endpoints/${encodeURIComponent(endpoint)}/tokens`, body, [201]);
  const issued = parsed as { token: string; jti: string; expires_at: string; sub: string };
  if (values.json) {
    io.stdout(`${JSON.stringify(issued, null, 2)}\n`);
  } else {
    io.stdout(`${issued.token}\n`);
    io.stderr(`token for endpoint ${endpoint}: jti ${issued.jti}, sub ${issued.sub}, expires ${issued.expires_at}\n`);
  }
  return 0;
}

function isoOrDash(seconds: unknown): string {
  return typeof seconds === 'number' && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : '-';
}

async function verify(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(
    args,
    { 'endpoint-id': { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' } },
    true,
  );
  if (positionals.length !== 1) throw new UsageError('exactly one TOKEN is required');
  const token = positionals[0].trim().replace(/^(?:backendai|bearer) /i, '');
  const settings = settingsFrom(io, values.config as string | undefined);
  const savedTokenSecret = settings.TOKEN_SECRET ?? savedSecret(settings, 'tokenSecret');
  if (!savedTokenSecret && !settings.TOKEN_PUBLIC_KEY_FILE) {
    throw new CliError(`no key to verify with: set TOKEN_SECRET (or TOKEN_PUBLIC_KEY_FILE), or run where ${savedSecretHint('tokenSecret')} is`);
  }
  const external: ExternalKeySource[] = [];
  if (settings.TOKEN_PUBLIC_KEY_FILE) {
    try {
      external.push(await loadPublicKeyFile(settings.TOKEN_PUBLIC_KEY_FILE));
    } catch (err) {
      throw new CliError((err as Error).message);
    }
  }
  // Without TOKEN_SECRET, an unguessable throwaway key: no HS256 token can verify against it.
  const secret = savedTokenSecret ?? randomBytes(32).toString('hex');
  const verifier = new TokenVerifier({ secret, external, issuers: settings.TOKEN_ISSUERS });
  const decoded = decodeUnverified(token);

  let code: string | null = null;
  let reason = '';
  try {
    const claims = await verifier.verify(token);
    const endpointId = values['endpoint-id'] as string | undefined;
    if (endpointId !== undefined && claims.aud !== endpointId && !(Array.isArray(claims.aud) && claims.aud.includes(endpointId))) {
      code = 'GW_AUTH_FORBIDDEN';
      reason = 'aud is another endpoint';
    }
  } catch (err) {
    if (!(err instanceof TokenRejected)) throw err;
    code = err.code;
    reason = err.reason;
  }

  if (values.json) {
    io.stdout(`${JSON.stringify({ valid: code === null, code, reason: reason || undefined, header: decoded?.header, claims: decoded?.claims }, null, 2)}\n`);
  } else {
    if (decoded) {
      io.stdout(`header:  ${JSON.stringify(decoded.header)}\n`);
      io.stdout(`claims:  ${JSON.stringify(decoded.claims)}\n`);
      io.stdout(`issued:  ${isoOrDash(decoded.claims.iat)}\n`);
      io.stdout(`expires: ${isoOrDash(decoded.claims.exp)}\n`);
    } else {
      io.stdout('claims:  (not a JWT)\n');
    }
    io.stdout(code === null ? 'verdict: valid (signature, algorithm, iss and exp; revocation is checked by the gateway)\n' : `verdict: invalid: ${code} (${reason})\n`);
  }
  return code === null ? 0 : 1;
}

export const tokenCommand: CliCommand = {
  name: 'token',
  summary: 'create a token through the admin API, or verify one offline',
  usage: USAGE,
  async run(args, io) {
    const [sub, ...rest] = args;
    if (sub === undefined || sub === '--help' || sub === '-h' || rest.includes('--help') || rest.includes('-h')) {
      io.stdout(USAGE);
      return sub === undefined ? 2 : 0;
    }
    if (sub === 'create') return create(rest, io);
    if (sub === 'verify') return verify(rest, io);
    throw new UsageError(`unknown subcommand "${sub}" (create, verify)`);
  },
};
