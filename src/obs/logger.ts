import pino, { type Logger } from 'pino';

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
