/** The client's reading of close codes and its backoff (src/client/close-policy.ts). */
import { describe, expect, it } from 'vitest'
import { backoffDelay, closeAction } from '../../src/client/close-policy.js'
import { CloseCodes } from '../../src/protocol/close-codes.js'

describe('closeAction', () => {
  it('reconnects after drops, server errors, restarts and 4000–4499', () => {
    for (const code of [1001, 1005, 1006, 1011, 1012, 1014, 4000, 4008, 4499, 3000]) expect(closeAction(code), String(code)).toBe('retry')
  })

  it('waits longer after 1013', () => {
    expect(closeAction(1013)).toBe('later')
  })

  it('stops on a normal close, protocol and policy errors, auth codes and 4500–4999', () => {
    for (const code of [1000, 1002, 1003, 1007, 1008, 1009, 1010, 4001, 4003, 4500, 4504, 4999]) expect(closeAction(code), String(code)).toBe('stop')
  })

  it('has a decision for every close code the gateway uses (a new code must be classified here)', () => {
    const expected: Record<string, string> = {
      NORMAL: 'stop',
      PROTOCOL_ERROR: 'stop',
      INVALID_PAYLOAD: 'stop',
      MESSAGE_TOO_BIG: 'stop',
      INTERNAL_ERROR: 'retry',
      SERVICE_RESTART: 'retry',
      TRY_AGAIN_LATER: 'later',
      SLOW_CONSUMER: 'retry',
      CONVERSATION_NOT_FOUND: 'stop'
    }
    for (const [name, code] of Object.entries(CloseCodes)) {
      expect(expected[name], `close code ${name} (${code}) is not classified in test/unit/client-close-policy.test.ts`).toBeDefined()
      expect(closeAction(code), name).toBe(expected[name])
    }
  })
})

describe('backoffDelay', () => {
  const options = { baseDelayMs: 100, maxDelayMs: 2000 }

  it('doubles its ceiling per attempt up to the maximum, with full jitter', () => {
    const top = () => 0.999999
    expect([0, 1, 2, 3, 4, 5, 10, 100].map((attempt) => backoffDelay(attempt, options, top))).toEqual([99, 199, 399, 799, 1599, 1999, 1999, 1999])
    expect(backoffDelay(3, options, () => 0)).toBe(0)
    expect(backoffDelay(3, options, () => 0.5)).toBe(400)
  })

  it('stays within bounds with the real random source', () => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const delay = backoffDelay(attempt, options)
      expect(delay).toBeGreaterThanOrEqual(0)
      expect(delay).toBeLessThan(Math.min(2000, 100 * 2 ** attempt))
    }
  })
})
