/** A pino logger whose lines tests can read back (PINO test/helper.js style). */
import { Writable } from 'node:stream'
import pino, { type Logger } from 'pino'
import { loggerOptions } from '../../src/logger.js'

export interface LogSink {
  readonly logger: Logger
  /** Every line logged so far, parsed. */
  readonly lines: Array<Record<string, unknown>>
  /** The raw text of every line, for "never contains" assertions. */
  text (): string
}

export function createLogSink (level = 'debug'): LogSink {
  const raw: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      raw.push(...chunk.toString('utf8').split('\n').filter(Boolean))
      callback()
    }
  })
  const logger = pino(loggerOptions(level), stream)
  return {
    logger,
    get lines () { return raw.map((line) => JSON.parse(line) as Record<string, unknown>) },
    text: () => raw.join('\n')
  }
}
