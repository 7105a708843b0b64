/** Regressions found in review of issue 2's pure modules. */
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.js'
import { toChatMessages } from '../../src/conversation/history.js'
import { createCodec } from '../../src/protocol/codec.js'
import type { Item } from '../../src/protocol/events.js'

function problemsOf (env: Record<string, string>): string[] {
  try {
    loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

describe('config', () => {
  it('rejects numbers that are not whole instead of truncating them', () => {
    expect(problemsOf({ PORT: '1e3' })).toEqual(['PORT: must be a whole number (got "1e3")'])
    expect(problemsOf({ UPSTREAM_MAX_RETRIES: '2.9' })).toHaveLength(1)
  })

  it('rejects a port above 65535 at boot', () => {
    expect(problemsOf({ PORT: '70000' })[0]).toMatch(/^PORT:/)
  })

  it('reports schema, key and TLS problems together', () => {
    const problems = problemsOf({ PORT: 'abc', GATEWAY_API_KEYS: 'no-tenant', TLS_CERT_FILE: '/nonexistent.pem' })
    expect(problems.map((p) => p.split(':')[0])).toEqual(['PORT', 'GATEWAY_API_KEYS', 'TLS_CERT_FILE and TLS_KEY_FILE must be set together'])
  })

  it('refuses a key listed for two tenants', () => {
    expect(problemsOf({ GATEWAY_API_KEYS: 'k1:a,k1:b' })).toEqual(['GATEWAY_API_KEYS / GATEWAY_API_KEYS_FILE: a key is listed twice'])
  })
})

const meta = { object: 'realtime.item' as const, status: 'completed' as const }
const call = (id: string): Item => ({ ...meta, id: `item_${id}`, type: 'function_call', call_id: id, name: 'f', arguments: '{}' })
const output = (id: string, status: Item['status'] = 'completed'): Item => ({ ...meta, status, id: `out_${id}`, type: 'function_call_output', call_id: id, output: `r${id}` })

describe('history', () => {
  it('drops a call whose only output is still in progress', () => {
    expect(toChatMessages([call('c1'), output('c1', 'in_progress')], undefined)).toEqual([])
  })

  it('puts an output stored before its call right after the call, once', () => {
    expect(toChatMessages([output('c1'), output('c1'), call('c1')], undefined)).toEqual([
      { role: 'assistant', content: null, toolCalls: [{ id: 'c1', name: 'f', arguments: '{}' }] },
      { role: 'tool', toolCallId: 'c1', content: 'rc1' }
    ])
  })
})

describe('codec', () => {
  it('names array positions with brackets in error.param, whichever check found them', () => {
    const codec = createCodec({ maxItemBytes: 10_000 })
    const result = codec.decode(JSON.stringify({ type: 'session.update', session: { tools: [{ type: 'function', name: 'bad name' }] } }), false)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.error.param).toBe('session.tools[0].name')
  })
})
