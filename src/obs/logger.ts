import pino, { type Logger } from 'pino';
import { AccessLog } from './access-log.js';

export type { Logger };

/**
 * Paths redacted at every level: tokens and secrets must never reach a log line, whatever a
 * caller passes as a field.
 */
export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'token',
  '*.token',
  'admin_token',
  'secret',
  '*.secret',
  'ADMIN_TOKEN',
  'TOKEN_SECRET',
  '*.ADMIN_TOKEN',
  '*.TOKEN_SECRET',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that writes nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * The access log (obs/access-log.ts): batched asynchronous writes to stdout, lines dropped and
 * counted rather than requests slowed when stdout cannot keep up. The last batch is written
 * synchronously when the process exits.
 */
export function createAccessLogger(level: string): AccessLog {
  const log = new AccessLog({ level });
  if (log.enabled) process.once('exit', () => log.flushSync());
  return log;
}
