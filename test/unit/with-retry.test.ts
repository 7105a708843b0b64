import { describe, expect, it } from 'vitest'
import { gatewayError, type GatewayError } from '../../src/errors.js'
import type { ModelProvider, ModelRequest, ProviderEvent } from '../../src/providers/provider.js'
import { withRetry } from '../../src/providers/with-retry.js'

const request: ModelRequest = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }

const events: ProviderEvent[] = [
  { type: 'text', delta: 'Hel' },
  { type: 'text', delta: 'lo' },
  { type: 'finish', reason: 'stop' }
]

const rateLimited = (retryAfterMs = 1): GatewayError =>
  gatewayError('GW_ERR_PROVIDER_RATE_LIMITED', [], { retryable: true, retryAfterMs })

/**
 * A hand-made provider: attempt n (0-based) runs `script(n)`, which yields events and/or throws.
 * `attempts` counts how many times stream() was iterated.
 */
function scripted (script: (attempt: number, signal: AbortSignal) => AsyncGenerator<ProviderEvent>) {
  const provider = {
    attempts: 0,
    stream (_request: ModelRequest, signal: AbortSignal): AsyncIterable<ProviderEvent> {
      return script(provider.attempts++, signal)
    }
  } satisfies ModelProvider & { attempts: number }
  return provider
}

/** Fails the first `failures` attempts with `error()` before any event, then yields `events`. */
function failingThenOk (failures: number, error: () => unknown = () => rateLimited()) {
  return scripted(async function * (attempt) {
    if (attempt < failures) throw error()
    yield * events
  })
}

async function collect (iterable: AsyncIterable<ProviderEvent>): Promise<ProviderEvent[]> {
  const out: ProviderEvent[] = []
  for await (const event of iterable) out.push(event)
  return out
}

async function rejectionOf (promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected the promise to reject')
}

describe('withRetry', () => {
  it('passes events through when the first attempt succeeds', async () => {
    const inner = failingThenOk(0)
    const provider = withRetry(inner, { maxRetries: 2, maxDelayMs: 1000, baseDelayMs: 1 })
    expect(await collect(provider.stream(request, new AbortController().signal))).toEqual(events)
    expect(inner.attempts).toBe(1)
  })

  it('passes the request and signal to the inner provider', async () => {
    const seen: Array<[ModelRequest, AbortSignal]> = []
    const inner: ModelProvider = {
      async * stream (req, signal) {
        seen.push([req, signal])
        yield * events
      }
    }
    const controller = new AbortController()
    await collect(withRetry(inner, { maxRetries: 0, maxDelayMs: 0 }).stream(request, controller.signal))
    expect(seen).toEqual([[request, controller.signal]])
  })

  it('retries retryable errors before the first event, then yields every event once', async () => {
    const inner = failingThenOk(2)
    const provider = withRetry(inner, { maxRetries: 2, maxDelayMs: 1000, baseDelayMs: 1 })
    expect(await collect(provider.stream(request, new AbortController().signal))).toEqual(events)
    expect(inner.attempts).toBe(3)
  })

  it('rethrows the last error once maxRetries retries have failed', async () => {
    const errors: GatewayError[] = []
    const inner = failingThenOk(10, () => {
      const err = rateLimited()
      errors.push(err)
      return err
    })
    const provider = withRetry(inner, { maxRetries: 2, maxDelayMs: 1000, baseDelayMs: 1 })
    const err = await rejectionOf(collect(provider.stream(request, new AbortController().signal)))
    expect(inner.attempts).toBe(3)
    expect(err).toBe(errors[2])
    expect((err as GatewayError).code).toBe('GW_ERR_PROVIDER_RATE_LIMITED')
  })

  it('does not retry at all with maxRetries 0', async () => {
    const inner = failingThenOk(1)
    const provider = withRetry(inner, { maxRetries: 0, maxDelayMs: 1000, baseDelayMs: 1 })
    const err = await rejectionOf(collect(provider.stream(request, new AbortController().signal)))
    expect((err as GatewayError).code).toBe('GW_ERR_PROVIDER_RATE_LIMITED')
    expect(inner.attempts).toBe(1)
  })

  it('never retries after an event was yielded', async () => {
    const inner = scripted(async function * () {
      yield { type: 'text', delta: 'partial' }
      throw rateLimited()
    })
    const provider = withRetry(inner, { maxRetries: 5, maxDelayMs: 1000, baseDelayMs: 1 })
    const seen: ProviderEvent[] = []
    const err = await rejectionOf((async () => {
      for await (const event of provider.stream(request, new AbortController().signal)) seen.push(event)
    })())
    expect((err as GatewayError).code).toBe('GW_ERR_PROVIDER_RATE_LIMITED')
    expect(seen).toEqual([{ type: 'text', delta: 'partial' }])
    expect(inner.attempts).toBe(1)
  })

  it('does not retry a non-retryable gateway error', async () => {
    const inner = failingThenOk(1, () => gatewayError('GW_ERR_PROVIDER_REJECTED', [400], { retryable: false }))
    const provider = withRetry(inner, { maxRetries: 3, maxDelayMs: 1000, baseDelayMs: 1 })
    const err = await rejectionOf(collect(provider.stream(request, new AbortController().signal)))
    expect((err as GatewayError).code).toBe('GW_ERR_PROVIDER_REJECTED')
    expect(inner.attempts).toBe(1)
  })

  it('does not retry a gateway error without a retryable flag', async () => {
    const inner = failingThenOk(1, () => gatewayError('GW_ERR_PROVIDER_UNAVAILABLE'))
    const provider = withRetry(inner, { maxRetries: 3, maxDelayMs: 1000, baseDelayMs: 1 })
    const err = await rejectionOf(collect(provider.stream(request, new AbortController().signal)))
    expect((err as GatewayError).code).toBe('GW_ERR_PROVIDER_UNAVAILABLE')
    expect(inner.attempts).toBe(1)
  })

  it('does not retry a plain Error, even one claiming to be retryable', async () => {
    const plain = Object.assign(new Error('boom'), { retryable: true })
    const inner = failingThenOk(1, () => plain)
    const provider = withRetry(inner, { maxRetries: 3, maxDelayMs: 1000, baseDelayMs: 1 })
    expect(await rejectionOf(collect(provider.stream(request, new AbortController().signal)))).toBe(plain)
    expect(inner.attempts).toBe(1)
  })

  it('gives up at once when retryAfterMs is over maxDelayMs', async () => {
    const onRetry: unknown[] = []
    const inner = failingThenOk(1, () => rateLimited(5_000))
    const provider = withRetry(inner, { maxRetries: 3, maxDelayMs: 1000, baseDelayMs: 1, onRetry: (...args) => onRetry.push(args) })
    const err = await rejectionOf(collect(provider.stream(request, new AbortController().signal)))
    expect((err as GatewayError).retryAfterMs).toBe(5_000)
    expect(inner.attempts).toBe(1)
    expect(onRetry).toEqual([])
  })

  it('honours a retryAfterMs equal to maxDelayMs', async () => {
    const inner = failingThenOk(1, () => rateLimited(2))
    const provider = withRetry(inner, { maxRetries: 1, maxDelayMs: 2, baseDelayMs: 1 })
    expect(await collect(provider.stream(request, new AbortController().signal))).toEqual(events)
    expect(inner.attempts).toBe(2)
  })

  it('calls onRetry with the error, the 1-based attempt and the retry-after delay', async () => {
    const calls: Array<[unknown, number, number]> = []
    const errors: GatewayError[] = []
    const inner = failingThenOk(2, () => {
      const err = rateLimited(errors.length + 1)
      errors.push(err)
      return err
    })
    const provider = withRetry(inner, {
      maxRetries: 3,
      maxDelayMs: 1000,
      baseDelayMs: 1,
      onRetry: (err, attempt, delayMs) => calls.push([err, attempt, delayMs])
    })
    await collect(provider.stream(request, new AbortController().signal))
    expect(calls).toEqual([[errors[0], 1, 1], [errors[1], 2, 2]])
  })

  it('backs off exponentially from baseDelayMs when the upstream gives no retry-after', async () => {
    const delays: number[] = []
    const inner = failingThenOk(3, () => gatewayError('GW_ERR_PROVIDER_UNAVAILABLE', [], { retryable: true }))
    const provider = withRetry(inner, { maxRetries: 3, maxDelayMs: 1000, baseDelayMs: 1, onRetry: (_err, _attempt, ms) => delays.push(ms) })
    expect(await collect(provider.stream(request, new AbortController().signal))).toEqual(events)
    expect(delays).toEqual([1, 2, 4])
  })

  it('gives up when the backoff grows over maxDelayMs', async () => {
    const delays: number[] = []
    const inner = failingThenOk(10, () => gatewayError('GW_ERR_PROVIDER_UNAVAILABLE', [], { retryable: true }))
    const provider = withRetry(inner, { maxRetries: 10, maxDelayMs: 3, baseDelayMs: 1, onRetry: (_err, _attempt, ms) => delays.push(ms) })
    const err = await rejectionOf(collect(provider.stream(request, new AbortController().signal)))
    expect((err as GatewayError).code).toBe('GW_ERR_PROVIDER_UNAVAILABLE')
    expect(delays).toEqual([1, 2])
    expect(inner.attempts).toBe(3)
  })

  it('ends without throwing and without another attempt when aborted during the backoff wait', async () => {
    const controller = new AbortController()
    const inner = failingThenOk(10, () => rateLimited(60_000))
    const provider = withRetry(inner, {
      maxRetries: 3,
      maxDelayMs: 120_000,
      onRetry: () => queueMicrotask(() => controller.abort())
    })
    expect(await collect(provider.stream(request, controller.signal))).toEqual([])
    expect(inner.attempts).toBe(1)
    expect(controller.signal.aborted).toBe(true)
  })

  it('rethrows without retrying when the signal is already aborted at the failure', async () => {
    const controller = new AbortController()
    const inner = scripted(async function * () {
      controller.abort()
      throw rateLimited()
    })
    const provider = withRetry(inner, { maxRetries: 3, maxDelayMs: 1000, baseDelayMs: 1 })
    const err = await rejectionOf(collect(provider.stream(request, controller.signal)))
    expect((err as GatewayError).code).toBe('GW_ERR_PROVIDER_RATE_LIMITED')
    expect(inner.attempts).toBe(1)
  })

  it('stops the inner stream when the consumer stops early', async () => {
    let finalized = false
    const inner = scripted(async function * () {
      try {
        yield * events
      } finally {
        finalized = true
      }
    })
    const provider = withRetry(inner, { maxRetries: 2, maxDelayMs: 1000, baseDelayMs: 1 })
    const iterator = provider.stream(request, new AbortController().signal)[Symbol.asyncIterator]()
    expect(await iterator.next()).toEqual({ done: false, value: events[0] })
    await iterator.return?.()
    expect(finalized).toBe(true)
    expect(inner.attempts).toBe(1)
  })
})
