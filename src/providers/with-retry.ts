/**
 * Wraps a ModelProvider with retries that happen only before the first event: once a token
 * has reached the client, a failure ends the response instead (a retry would repeat text).
 * Waits honour the upstream's retry-after, capped at `maxDelayMs`, else exponential backoff.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { isGatewayError } from '../errors.js'
import type { ModelProvider } from './provider.js'

export interface RetryOptions {
  readonly maxRetries: number
  readonly maxDelayMs: number
  /** First backoff step when the upstream gives no retry-after, in ms. */
  readonly baseDelayMs?: number
  /** Told about each retry, e.g. to log it. */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void
}

export function withRetry (provider: ModelProvider, options: RetryOptions): ModelProvider {
  const base = options.baseDelayMs ?? 250
  return {
    async * stream (request, signal) {
      for (let attempt = 0; ; attempt++) {
        let started = false
        try {
          for await (const event of provider.stream(request, signal)) {
            started = true
            yield event
          }
          return
        } catch (err) {
          const retryable = isGatewayError(err) && err.retryable === true
          if (started || signal.aborted || !retryable || attempt >= options.maxRetries) throw err
          const wait = err.retryAfterMs ?? base * 2 ** attempt
          if (wait > options.maxDelayMs) throw err
          options.onRetry?.(err, attempt + 1, wait)
          try {
            await delay(wait, undefined, { signal })
          } catch {
            return // aborted while waiting: the caller sees signal.aborted
          }
        }
      }
    }
  }
}
