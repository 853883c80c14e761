import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * Paths pino censors if a caller ever passes them. This is the second line of defence: the
 * code never hands a Secret's data or a private key to the logger in the first place, and a
 * test scans the controller's output for key material.
 */
const REDACT = [
  'data',
  '*.data',
  'stringData',
  '*.stringData',
  'privateKey',
  '*.privateKey',
  'keyPem',
  '*.keyPem',
  'subjectKeyPem',
  '*.subjectKeyPem',
  'token',
  '*.token',
  'tsigSecret',
  '*.tsigSecret',
  'hmacKey',
  '*.hmacKey',
  'headers.authorization',
  '*.headers.authorization',
];

export interface LoggerOptions {
  level?: string;
  /** Write to this stream instead of stdout (tests). */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      base: { component: 'cert-rotator' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
    },
    opts.destination ?? process.stdout,
  );
}
