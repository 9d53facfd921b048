import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The process logger. JSON lines on stderr (stdout stays free for command
 * output). Fields that could carry secrets are redacted at the source as a
 * second line of defence: no code path should log them in the first place.
 */
export function createLogger(name: string, level = process.env.ANCHORAGE_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: ['pin', '*.pin', 'privateKey', '*.privateKey', 'key', '*.key', 'token', '*.token'], censor: '[redacted]' },
    },
    pino.destination(2),
  );
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
