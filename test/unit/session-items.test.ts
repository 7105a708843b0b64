/** The pure item helpers a session uses (src/session/items.ts). */
import { describe, expect, it } from 'vitest'
import type { ResponseResource } from '../../src/protocol/events.js'
import { functionCalls, latestUserText, redactTool, responseText, toChatTool, toChatToolChoice, toItem } from '../../src/session/items.js'

describe('toItem', () => {
  it('stores client items whole, keeping an explicit incomplete and normalising parts per role', () => {
    expect(toItem({ type: 'message', role: 'assistant', status: 'in_progress', content: [{ type: 'text', text: 'hi' }] }, 'item_gen')).toEqual({
      id: 'item_gen', object: 'realtime.item', status: 'completed', type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'hi' }]
    })
    expect(toItem({ id: 'item_s', type: 'message', role: 'system', status: 'incomplete', content: [{ type: 'input_text', text: 'be kind' }] }, 'x')).toMatchObject({ id: 'item_s', status: 'incomplete', role: 'system' })
    expect(toItem({ type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'https://e.x/a.png', detail: 'high' }, { type: 'input_text', text: 'this?' }] }, 'x')).toMatchObject({
      content: [{ type: 'input_image', image_url: 'https://e.x/a.png', detail: 'high' }, { type: 'input_text', text: 'this?' }]
    })
    expect(toItem({ type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' }, 'x')).toMatchObject({ type: 'function_call', call_id: 'c1' })
    expect(toItem({ type: 'function_call_output', call_id: 'c1', output: 'ok' }, 'x')).toMatchObject({ type: 'function_call_output', output: 'ok' })
  })
})

describe('responses', () => {
  const response: ResponseResource = {
    id: 'resp_1',
    object: 'realtime.response',
    output: [
      { id: 'item_1', type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Hello ' }, { type: 'output_text', text: 'there' }] },
      { id: 'item_2', type: 'function_call', call_id: 'call_1', name: 'f', arguments: '{"a":1}' },
      { type: 'function_call', name: 'no_ids', arguments: '' },
      { id: 'item_3', type: 'mcp_call', server_label: 's', name: 'm', arguments: '{}' }
    ]
  }

  it('reads the text and the identifiable function calls of a response', () => {
    expect(responseText(response)).toBe('Hello there')
    expect(functionCalls(response)).toEqual([{ id: 'item_2', object: 'realtime.item', type: 'function_call', status: 'completed', call_id: 'call_1', name: 'f', arguments: '{"a":1}' }])
    expect(responseText({ id: 'r', object: 'realtime.response' })).toBe('')
  })

  it('finds the latest user message text', () => {
    const user = (id: string, text: string) => toItem({ id, type: 'message', role: 'user', content: [{ type: 'input_text', text }, { type: 'input_text', text: '!' }] }, id)
    expect(latestUserText([user('a', 'first'), user('b', 'second'), toItem({ type: 'function_call_output', call_id: 'c', output: 'x' }, 'o')])).toBe('second\n!')
    expect(latestUserText([])).toBeUndefined()
  })
})

describe('tools', () => {
  it('never echoes an MCP server\'s credentials, and leaves other tools alone', () => {
    const mcp = { type: 'mcp', server_label: 's', headers: { Authorization: 'Bearer mcp-secret-fake' }, authorization: 'tok-fake' }
    expect(redactTool(mcp)).toEqual({ type: 'mcp', server_label: 's', headers: { Authorization: '[redacted]' }, authorization: '[redacted]' })
    expect(mcp.headers.Authorization).toBe('Bearer mcp-secret-fake')
    const fn = { type: 'function', name: 'f' }
    expect(redactTool(fn)).toBe(fn)
  })

  it('maps tools and tool choices onto the Chat Completions shapes', () => {
    expect(toChatTool({ type: 'function', name: 'f' })).toEqual({ name: 'f' })
    expect(toChatTool({ type: 'function', name: 'f', description: 'd', parameters: { type: 'object' }, strict: true })).toEqual({ name: 'f', description: 'd', parameters: { type: 'object' }, strict: true })
    expect(['auto', 'none', 'required'].map((c) => toChatToolChoice(c as 'auto'))).toEqual(['auto', 'none', 'required'])
    expect(toChatToolChoice({ type: 'function', name: 'f' })).toEqual({ name: 'f' })
    expect(toChatToolChoice({ type: 'mcp', server_label: 's' })).toBe('auto')
  })
})
