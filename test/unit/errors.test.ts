/** Keeps src/errors.ts and README's error table in step, and checks the registry's contract. */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { errorSpecs, gatewayError, isGatewayError, type GatewayErrorCode } from '../../src/errors.js'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
const rows = new Map(readme.split('\n')
  .map((line) => /^\| `([a-z_]+)` \| `(GW_ERR_[A-Z_]+)` \| (\d{3}) \|/.exec(line))
  .filter((m): m is RegExpExecArray => m !== null)
  .map((m) => [m[2], { wire: m[1], status: Number(m[3]) }]))

describe('the error registry', () => {
  it('matches README row for row', () => {
    const codes = Object.keys(errorSpecs)
    expect([...rows.keys()].sort()).toEqual([...codes].sort())
    for (const [code, spec] of Object.entries(errorSpecs)) {
      expect(rows.get(code), code).toEqual({ wire: spec.wire, status: spec.status })
    }
  })

  it('gives every error a unique wire code', () => {
    const wires = Object.values(errorSpecs).map((s) => s.wire)
    expect(new Set(wires).size).toBe(wires.length)
  })

  it('builds errors that callers match on code, with cause and details', () => {
    const cause = new Error('root')
    const err = gatewayError('GW_ERR_PROTOCOL_ITEM_TOO_LARGE', [5000, 4096], { cause, param: 'item' })
    expect(err).toMatchObject({ code: 'GW_ERR_PROTOCOL_ITEM_TOO_LARGE', wire: 'item_too_large', statusCode: 413, param: 'item', type: 'invalid_request_error' })
    expect(err.message).toBe('The item is 5000 bytes, over MAX_ITEM_BYTES (4096)')
    expect(err.cause).toBe(cause)
    expect(isGatewayError(err)).toBe(true)
    expect(isGatewayError(new Error('x'))).toBe(false)
    expect(isGatewayError({ code: 'ECONNRESET' })).toBe(false)
    expect(() => gatewayError('GW_ERR_NOPE' as GatewayErrorCode)).toThrow(TypeError)
  })
})
