/** Client-side tools (src/client/client-tools.ts): declarations and calls that never reject. */
import { describe, expect, it } from 'vitest'
import { ClientTools } from '../../src/client/client-tools.js'

describe('ClientTools', () => {
  it('declares what is registered and reports each change', () => {
    let changes = 0
    const tools = new ClientTools(() => changes++)
    tools.register('weather', { description: 'The weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }, () => 'sunny')
    tools.register('ping', {}, () => 'pong')
    expect(tools.definitions()).toEqual([
      { type: 'function', name: 'weather', description: 'The weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
      { type: 'function', name: 'ping', parameters: { type: 'object', properties: {} } }
    ])
    expect(tools.has('ping')).toBe(true)
    expect(tools.unregister('ping')).toBe(true)
    expect(tools.unregister('ping')).toBe(false)
    expect(changes).toBe(3)
    expect(() => tools.register('', {}, () => '')).toThrow(TypeError)
    expect(() => tools.register('x'.repeat(65), {}, () => '')).toThrow(TypeError)
  })

  it('runs calls: parsed arguments in, a string out, every failure an error output', async () => {
    const tools = new ClientTools(() => {})
    tools.register('echo', {}, (args, call) => ({ args, call }))
    tools.register('text', {}, () => 'plain')
    tools.register('nothing', {}, () => undefined)
    tools.register('async', {}, async () => [1, 2])
    tools.register('throws', {}, () => { throw new Error('boom') })
    tools.register('rejects', {}, async () => Promise.reject(new RangeError('not an error')))
    expect(JSON.parse(await tools.run('echo', 'call_1', '{"a":1}'))).toEqual({ args: { a: 1 }, call: { name: 'echo', callId: 'call_1' } })
    expect(JSON.parse(await tools.run('echo', 'call_2', ''))).toMatchObject({ args: {} })
    expect(await tools.run('text', 'c', '{}')).toBe('plain')
    expect(await tools.run('nothing', 'c', '{}')).toBe('null')
    expect(await tools.run('async', 'c', '{}')).toBe('[1,2]')
    expect(JSON.parse(await tools.run('throws', 'c', '{}'))).toEqual({ error: { code: 'tool_failed', message: 'boom' } })
    expect(JSON.parse(await tools.run('rejects', 'c', '{}'))).toEqual({ error: { code: 'tool_failed', message: 'not an error' } })
    expect(JSON.parse(await tools.run('echo', 'c', '{oops'))).toEqual({ error: { code: 'invalid_arguments', message: 'the arguments are not valid JSON' } })
    expect(JSON.parse(await tools.run('missing', 'c', '{}'))).toEqual({ error: { code: 'unknown_tool', message: 'no client tool named missing' } })
  })
})
