import { describe, expect, it } from 'vitest'
import { toChatMessages } from '../../src/conversation/history.js'
import type { Item } from '../../src/protocol/events.js'

type Status = Item['status']

const user = (id: string, text: string, status: Status = 'completed'): Item =>
  ({ id, object: 'realtime.item', status, type: 'message', role: 'user', content: [{ type: 'input_text', text }] })

const system = (id: string, text: string): Item =>
  ({ id, object: 'realtime.item', status: 'completed', type: 'message', role: 'system', content: [{ type: 'input_text', text }] })

const assistant = (id: string, text: string, status: Status = 'completed'): Item =>
  ({ id, object: 'realtime.item', status, type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] })

const call = (id: string, callId: string, name = 'get_weather', args = '{"city":"Paris"}', status: Status = 'completed'): Item =>
  ({ id, object: 'realtime.item', status, type: 'function_call', call_id: callId, name, arguments: args })

const output = (id: string, callId: string, out = '{"temp":20}', status: Status = 'completed'): Item =>
  ({ id, object: 'realtime.item', status, type: 'function_call_output', call_id: callId, output: out })

describe('toChatMessages: instructions', () => {
  it('puts instructions first, as a system message', () => {
    expect(toChatMessages([user('u1', 'hi')], 'Be brief.')).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hi' }
    ])
  })

  it('adds no system message for undefined or empty instructions', () => {
    expect(toChatMessages([user('u1', 'hi')], undefined)).toEqual([{ role: 'user', content: 'hi' }])
    expect(toChatMessages([user('u1', 'hi')], '')).toEqual([{ role: 'user', content: 'hi' }])
  })

  it('returns only the system message for an empty conversation', () => {
    expect(toChatMessages([], 'sys')).toEqual([{ role: 'system', content: 'sys' }])
    expect(toChatMessages([], undefined)).toEqual([])
  })
})

describe('toChatMessages: messages', () => {
  it('maps a single user text part to string content', () => {
    expect(toChatMessages([user('u1', 'hello')], undefined)).toEqual([{ role: 'user', content: 'hello' }])
  })

  it('maps several user text parts to array parts', () => {
    const item: Item = {
      id: 'u1',
      object: 'realtime.item',
      status: 'completed',
      type: 'message',
      role: 'user',
      content: [{ type: 'input_text', text: 'one' }, { type: 'input_text', text: 'two' }]
    }
    expect(toChatMessages([item], undefined)).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] }
    ])
  })

  it('maps images to image_url parts with url and detail', () => {
    const item: Item = {
      id: 'u1',
      object: 'realtime.item',
      status: 'completed',
      type: 'message',
      role: 'user',
      content: [
        { type: 'input_text', text: 'what is this?' },
        { type: 'input_image', image_url: 'https://example.test/cat.png', detail: 'low' },
        { type: 'input_image', image_url: 'data:image/png;base64,AAAA' }
      ]
    }
    expect(toChatMessages([item], undefined)).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'what is this?' },
          { type: 'image_url', url: 'https://example.test/cat.png', detail: 'low' },
          { type: 'image_url', url: 'data:image/png;base64,AAAA' }
        ]
      }
    ])
  })

  it('keeps a lone image as an array part', () => {
    const item: Item = {
      id: 'u1',
      object: 'realtime.item',
      status: 'completed',
      type: 'message',
      role: 'user',
      content: [{ type: 'input_image', image_url: 'https://example.test/a.png', detail: 'high' }]
    }
    expect(toChatMessages([item], undefined)).toEqual([
      { role: 'user', content: [{ type: 'image_url', url: 'https://example.test/a.png', detail: 'high' }] }
    ])
  })

  it('maps a system item to a system message', () => {
    expect(toChatMessages([system('s1', 'Speak French.')], 'Be brief.')).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'system', content: 'Speak French.' }
    ])
  })

  it('maps assistant output_text to assistant content, joining parts', () => {
    const twoParts: Item = {
      id: 'a2',
      object: 'realtime.item',
      status: 'completed',
      type: 'message',
      role: 'assistant',
      content: [{ type: 'output_text', text: 'Hel' }, { type: 'output_text', text: 'lo' }]
    }
    expect(toChatMessages([user('u1', 'hi'), assistant('a1', 'Hi!'), twoParts], undefined)).toEqual([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'Hi!' },
      { role: 'assistant', content: 'Hello' }
    ])
  })

  it('keeps an incomplete assistant message', () => {
    expect(toChatMessages([user('u1', 'hi'), assistant('a1', 'Hel', 'incomplete')], undefined)).toEqual([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'Hel' }
    ])
  })

  it('skips in_progress items', () => {
    expect(toChatMessages([user('u1', 'hi'), assistant('a1', 'stream…', 'in_progress'), user('u2', 'draft', 'in_progress')], undefined)).toEqual([
      { role: 'user', content: 'hi' }
    ])
  })

  it('keeps item order', () => {
    const messages = toChatMessages([user('u1', '1'), assistant('a1', '2'), user('u2', '3'), assistant('a2', '4')], undefined)
    expect(messages.map((m) => m.content)).toEqual(['1', '2', '3', '4'])
  })
})

describe('toChatMessages: function calls', () => {
  it('maps a call and its output to an assistant tool call and a tool message', () => {
    expect(toChatMessages([user('u1', 'weather?'), call('f1', 'call_1'), output('o1', 'call_1')], undefined)).toEqual([
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
      { role: 'tool', toolCallId: 'call_1', content: '{"temp":20}' }
    ])
  })

  it('merges consecutive calls into one assistant message', () => {
    const items = [
      user('u1', 'weather in two cities?'),
      call('f1', 'call_1', 'get_weather', '{"city":"Paris"}'),
      call('f2', 'call_2', 'get_weather', '{"city":"Rome"}'),
      output('o1', 'call_1', 'sunny'),
      output('o2', 'call_2', 'rainy')
    ]
    expect(toChatMessages(items, undefined)).toEqual([
      { role: 'user', content: 'weather in two cities?' },
      {
        role: 'assistant',
        content: null,
        toolCalls: [
          { id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
          { id: 'call_2', name: 'get_weather', arguments: '{"city":"Rome"}' }
        ]
      },
      { role: 'tool', toolCallId: 'call_1', content: 'sunny' },
      { role: 'tool', toolCallId: 'call_2', content: 'rainy' }
    ])
  })

  it('attaches calls to a directly preceding assistant text message', () => {
    const items = [user('u1', 'hi'), assistant('a1', 'Let me check.'), call('f1', 'call_1'), output('o1', 'call_1')]
    expect(toChatMessages(items, undefined)).toEqual([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'Let me check.', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
      { role: 'tool', toolCallId: 'call_1', content: '{"temp":20}' }
    ])
  })

  it('starts a new assistant message for calls after a tool message', () => {
    const items = [call('f1', 'call_1'), output('o1', 'call_1'), call('f2', 'call_2'), output('o2', 'call_2')]
    expect(toChatMessages(items, undefined)).toEqual([
      { role: 'assistant', content: null, toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
      { role: 'tool', toolCallId: 'call_1', content: '{"temp":20}' },
      { role: 'assistant', content: null, toolCalls: [{ id: 'call_2', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
      { role: 'tool', toolCallId: 'call_2', content: '{"temp":20}' }
    ])
  })

  it('drops a call without an output', () => {
    expect(toChatMessages([user('u1', 'hi'), call('f1', 'call_1')], undefined)).toEqual([{ role: 'user', content: 'hi' }])
  })

  it('drops only the unanswered call of a pair', () => {
    const items = [call('f1', 'call_1'), call('f2', 'call_2'), output('o2', 'call_2')]
    expect(toChatMessages(items, undefined)).toEqual([
      { role: 'assistant', content: null, toolCalls: [{ id: 'call_2', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
      { role: 'tool', toolCallId: 'call_2', content: '{"temp":20}' }
    ])
  })

  it('drops an output without a call', () => {
    expect(toChatMessages([user('u1', 'hi'), output('o1', 'call_orphan')], undefined)).toEqual([{ role: 'user', content: 'hi' }])
  })

  it('drops an output whose call is not completed, and the call with it', () => {
    for (const status of ['incomplete', 'in_progress'] as const) {
      const items = [user('u1', 'hi'), call('f1', 'call_1', 'get_weather', '{"ci', status), output('o1', 'call_1')]
      expect(toChatMessages(items, undefined)).toEqual([{ role: 'user', content: 'hi' }])
    }
  })

  it('does not attach a dropped call to the preceding assistant message', () => {
    const items = [assistant('a1', 'Let me check.'), call('f1', 'call_1')]
    expect(toChatMessages(items, undefined)).toEqual([{ role: 'assistant', content: 'Let me check.' }])
  })

  it('does not mutate its input', () => {
    const items = [assistant('a1', 'Let me check.'), call('f1', 'call_1'), output('o1', 'call_1')]
    const before = structuredClone(items)
    toChatMessages(items, 'sys')
    expect(items).toEqual(before)
  })

  it('is deterministic', () => {
    const items = [user('u1', 'hi'), assistant('a1', 'x'), call('f1', 'call_1'), output('o1', 'call_1')]
    expect(toChatMessages(items, 'sys')).toEqual(toChatMessages(items, 'sys'))
  })
})
