/** pino options for the gateway's root logger (fastify owns the instance). */
import type { LoggerOptions } from 'pino'

/** Paths that may hold credentials; pino replaces them with "[Redacted]". */
export const redactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["sec-websocket-protocol"]',
  'req.headers["api-key"]',
  '*.apiKey',
  '*.api_key'
]

export function loggerOptions (level: string): LoggerOptions {
  return { level, redact: { paths: redactPaths, censor: '[Redacted]' } }
}

/** The logging surface layers below transport/ use: pino's, without importing fastify. */
export interface Log {
  error (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  info (obj: object, msg: string): void
  debug (obj: object, msg: string): void
  child (bindings: Record<string, string>): Log
}
