/**
 * @module observability/logger
 * The server's pino logger: JSON lines, with credentials and secret values redacted wherever they
 * appear in a logged object. Code and file contents are never passed to it (only sizes and hashes).
 */

import { pino, type DestinationStream, type Logger } from 'pino';

/** Object paths whose values never reach a log line. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  '*.authorization',
  '*.secret',
  '*.apiKey',
  '*.key',
  '*.token',
  '*.value',
  '*.password',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: REDACTED_PATHS };
  return destination ? pino(options, destination) : pino(options);
}
