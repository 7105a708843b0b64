import { describe, expect, it } from 'vitest'
import { createCodec, MAX_JSON_DEPTH, type DecodeResult } from '../../src/protocol/codec.js'

const codec = createCodec({ maxItemBytes: 64 * 1024 })

const decode = (value: unknown): DecodeResult => codec.decode(JSON.stringify(value), false)

/** Decodes `value` and asserts it was accepted unchanged. */
function expectOk (value: unknown): void {
  const result = decode(value)
  if (!result.ok) throw new Error(`expected ok, got ${result.error.code} (${result.error.param ?? '-'}): ${result.error.message}`)
  expect(result.event).toEqual(value)
}

interface Expected { code: string, wire: string, param?: string | RegExp, eventId?: string }

/** Asserts a rejection with the given code, wire code, param and event id. */
function expectError (result: DecodeResult, expected: Expected): void {
  if (result.ok) throw new Error(`expected an error, got ok: ${JSON.stringify(result.event)}`)
  expect(result.error.code).toBe(expected.code)
  expect(result.error.wire).toBe(expected.wire)
  if (expected.param instanceof RegExp) expect(result.error.param).toMatch(expected.param)
  else expect(result.error.param).toBe(expected.param)
  if (expected.eventId === undefined) expect('eventId' in result).toBe(false)
  else expect(result.eventId).toBe(expected.eventId)
}

const invalid = (param: string | RegExp, eventId?: string): Expected =>
  ({ code: 'GW_ERR_PROTOCOL_INVALID_EVENT', wire: 'invalid_value', param, ...(eventId === undefined ? {} : { eventId }) })

const userText = (text: string) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] })
const itemCreate = (item: unknown, extra: Record<string, unknown> = {}) => ({ type: 'conversation.item.create', ...extra, item })

describe('codec: valid events', () => {
  it('accepts the full session.update the agents-realtime SDK sends', () => {
    expectOk({
      type: 'session.update',
      event_id: 'evt_1',
      session: {
        type: 'realtime',
        instructions: 'You are a helpful assistant.',
        model: 'gpt-realtime',
        output_modalities: ['text'],
        audio: {
          input: {
            format: { type: 'audio/pcm', rate: 24000 },
            noise_reduction: null,
            transcription: { model: 'gpt-4o-mini-transcribe' },
            turn_detection: { type: 'semantic_vad' }
          },
          output: { format: { type: 'audio/pcm', rate: 24000 }, speed: 1 }
        },
        tool_choice: 'auto',
        parallel_tool_calls: true,
        tools: [{
          type: 'function',
          name: 'get_weather',
          description: 'Weather by city',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false }
        }],
        prompt: { id: 'pmpt_fake', version: '1', variables: { name: 'x' } },
        reasoning: { effort: 'low' }
      }
    })
  })

  it('accepts the tracing updates the agents-realtime SDK sends', () => {
    expectOk({ type: 'session.update', session: { type: 'realtime', tracing: 'auto' } })
    expectOk({ type: 'session.update', session: { type: 'realtime', tracing: null } })
    expectOk({ type: 'session.update', session: { type: 'realtime', tracing: { workflow_name: 'demo', group_id: 'g1', metadata: { a: 'b' } } } })
  })

  it('accepts the remaining GA session fields', () => {
    expectOk({
      type: 'session.update',
      session: {
        object: 'realtime.session',
        id: 'sess_1',
        max_output_tokens: 'inf',
        temperature: 0.7,
        include: ['item.input_audio_transcription.logprobs'],
        truncation: 'auto',
        expires_at: 1_700_000_000,
        conversation_id: 'conv_1',
        tool_choice: { type: 'function', name: 'get_weather' }
      }
    })
    expectOk({ type: 'session.update', session: { max_output_tokens: 100, truncation: { type: 'retention_ratio', retention_ratio: 0.5 } } })
    expectOk({ type: 'session.update', session: {} })
  })

  it('accepts conversation.item.create with a user message', () => {
    expectOk(itemCreate(userText('hello'), { event_id: 'evt_2', previous_item_id: null }))
    expectOk(itemCreate({
      id: 'item_1',
      type: 'message',
      role: 'user',
      content: [
        { type: 'input_text', text: 'what is this?' },
        { type: 'input_image', image_url: 'https://example.test/cat.png', detail: 'low' },
        { type: 'input_image', image_url: 'data:image/png;base64,AAAA' }
      ]
    }, { previous_item_id: 'item_0' }))
  })

  it('accepts system and assistant messages with their part types', () => {
    expectOk(itemCreate({ type: 'message', role: 'system', content: [{ type: 'input_text', text: 'Be brief.' }] }))
    expectOk(itemCreate({ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'Hi!' }] }))
    expectOk(itemCreate({ type: 'message', role: 'assistant', content: [{ type: 'text', text: 'Hi!' }] }))
  })

  it('accepts conversation.item.create with a function_call', () => {
    expectOk(itemCreate({ type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }))
  })

  it('accepts conversation.item.create with a function_call_output (as the agents SDK sends it)', () => {
    expectOk(itemCreate({ type: 'function_call_output', output: '{"temp":20}', call_id: 'call_1' }))
  })

  it('accepts conversation.item.retrieve and conversation.item.delete', () => {
    expectOk({ type: 'conversation.item.retrieve', event_id: 'e', item_id: 'item_1' })
    expectOk({ type: 'conversation.item.delete', item_id: 'item_1' })
  })

  it('accepts response.create without a response', () => {
    expectOk({ type: 'response.create' })
    expectOk({ type: 'response.create', event_id: 'evt_3', response: {} })
  })

  it('accepts response.create with overrides', () => {
    expectOk({
      type: 'response.create',
      response: {
        conversation: 'auto',
        instructions: 'Answer in French.',
        model: 'gpt-4o-mini',
        tools: [{ type: 'function', name: 'lookup', strict: true }],
        tool_choice: 'required',
        max_output_tokens: 256,
        output_modalities: ['text'],
        parallel_tool_calls: false,
        temperature: 0,
        metadata: { topic: 'weather' }
      }
    })
  })

  it('accepts an out-of-band response.create with conversation none and input items', () => {
    expectOk({
      type: 'response.create',
      response: {
        conversation: 'none',
        metadata: null,
        input: [
          userText('Summarise.'),
          { type: 'function_call', call_id: 'call_1', name: 'f', arguments: '{}' },
          { type: 'function_call_output', call_id: 'call_1', output: 'ok' }
        ]
      }
    })
  })

  it('accepts response.cancel with and without a response id', () => {
    expectOk({ type: 'response.cancel' })
    expectOk({ type: 'response.cancel', response_id: 'resp_1' })
  })

  it('decodes a Buffer like a string', () => {
    const event = itemCreate(userText('héllo ✓ 🎉'), { event_id: 'evt_buf' })
    const fromBuffer = codec.decode(Buffer.from(JSON.stringify(event), 'utf8'), false)
    const fromString = codec.decode(JSON.stringify(event), false)
    expect(fromBuffer).toEqual(fromString)
    expect(fromBuffer).toEqual({ ok: true, event })
  })

  it('rejects a Buffer like a string', () => {
    const fromBuffer = codec.decode(Buffer.from('{"type":"nope","event_id":"e"}'), false)
    expectError(fromBuffer, { code: 'GW_ERR_PROTOCOL_UNKNOWN_EVENT', wire: 'unknown_event_type', param: 'type', eventId: 'e' })
  })
})

describe('codec: frame-level errors', () => {
  it('rejects a binary frame', () => {
    const result = codec.decode(Buffer.from(JSON.stringify({ type: 'response.create' })), true)
    expectError(result, { code: 'GW_ERR_PROTOCOL_BINARY_FRAME', wire: 'binary_not_supported' })
  })

  it('rejects invalid JSON', () => {
    expectError(codec.decode('{bad', false), { code: 'GW_ERR_PROTOCOL_INVALID_JSON', wire: 'invalid_json' })
    expectError(codec.decode('', false), { code: 'GW_ERR_PROTOCOL_INVALID_JSON', wire: 'invalid_json' })
  })

  it('rejects JSON that is not an object', () => {
    for (const text of ['[1,2]', 'null', '"response.create"', '42', 'true']) {
      expectError(codec.decode(text, false), { code: 'GW_ERR_PROTOCOL_INVALID_JSON', wire: 'invalid_json' })
    }
  })

  it('rejects a missing or non-string type, keeping the event id', () => {
    expectError(decode({ event_id: 'e1' }), invalid('type', 'e1'))
    expectError(decode({ type: 5 }), invalid('type'))
    expectError(decode({ type: null, event_id: 'e2' }), invalid('type', 'e2'))
  })

  it('reports no event id when event_id is not a string', () => {
    const result = decode({ type: 'nope', event_id: 7 })
    expectError(result, { code: 'GW_ERR_PROTOCOL_UNKNOWN_EVENT', wire: 'unknown_event_type', param: 'type' })
  })

  it('rejects an unknown event type', () => {
    const result = decode({ type: 'session.create', event_id: 'e3' })
    expectError(result, { code: 'GW_ERR_PROTOCOL_UNKNOWN_EVENT', wire: 'unknown_event_type', param: 'type', eventId: 'e3' })
    if (!result.ok) expect(result.error.message).toContain('"session.create"')
  })

  it('does not echo a huge unknown type in full', () => {
    const result = decode({ type: 'x'.repeat(10_000) })
    if (result.ok) throw new Error('expected an error')
    expect(result.error.message.length).toBeLessThan(200)
  })

  it('rejects the audio events with audio_not_supported', () => {
    for (const type of ['input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'output_audio_buffer.clear', 'conversation.item.truncate']) {
      expectError(decode({ type, event_id: 'ea', audio: 'AAAA' }), {
        code: 'GW_ERR_PROTOCOL_AUDIO_UNSUPPORTED',
        wire: 'audio_not_supported',
        param: 'type',
        eventId: 'ea'
      })
    }
  })
})

describe('codec: event field errors', () => {
  it('rejects wrong field types with the field as param', () => {
    expectError(decode({ type: 'session.update', event_id: 'e', session: { instructions: 42 } }), invalid('session.instructions', 'e'))
    expectError(decode({ type: 'session.update', session: { temperature: 'hot' } }), invalid('session.temperature'))
    expectError(decode({ type: 'session.update', session: { temperature: 3 } }), invalid('session.temperature'))
    expectError(decode({ type: 'session.update', session: { tool_choice: 'sometimes' } }), invalid('session.tool_choice'))
    expectError(decode({ type: 'session.update', session: { output_modalities: ['video'] } }), invalid(/^session\.output_modalities/))
    expectError(decode({ type: 'response.create', response: { max_output_tokens: -1 } }), invalid('response.max_output_tokens'))
    expectError(decode({ type: 'response.create', response: { conversation: 'conv_other' } }), invalid('response.conversation'))
    expectError(decode({ type: 'response.create', response: 'go' }), invalid('response'))
    expectError(decode({ type: 'response.cancel', response_id: 5 }), invalid('response_id'))
    expectError(decode(itemCreate(userText('x'), { previous_item_id: 5 })), invalid('previous_item_id'))
  })

  it('rejects a non-string event_id', () => {
    expectError(decode({ type: 'response.create', event_id: 5 }), invalid('event_id'))
  })

  it('rejects a missing required field', () => {
    expectError(decode({ type: 'session.update' }), invalid('session'))
    expectError(decode({ type: 'conversation.item.create' }), invalid('item'))
    expectError(decode({ type: 'conversation.item.retrieve', event_id: 'r' }), invalid('item_id', 'r'))
    expectError(decode({ type: 'conversation.item.delete', item_id: '' }), invalid('item_id'))
  })

  it('rejects an unknown session field', () => {
    expectError(decode({ type: 'session.update', event_id: 'e', session: { voice: 'alloy' } }), invalid('session.voice', 'e'))
  })

  it('rejects an unknown top-level field', () => {
    expectError(decode({ type: 'response.cancel', extra: true }), invalid('extra'))
  })

  it('rejects a tool with an invalid name', () => {
    expectError(decode({ type: 'session.update', session: { tools: [{ type: 'function', name: 'bad name' }] } }), invalid(/^session\.tools(\.0|\[0\])\.name$/))
    expectError(decode({ type: 'session.update', session: { tools: [{ type: 'mcp', server_label: 'x' }] } }), invalid(/^session\.tools/))
  })
})

describe('codec: item errors', () => {
  it('rejects an item without a type', () => {
    expectError(decode(itemCreate({ role: 'user' }, { event_id: 'i1' })), invalid('item.type', 'i1'))
    expectError(decode(itemCreate('hello')), invalid('item'))
  })

  it('rejects an unsupported item type', () => {
    for (const type of ['reasoning', 'mcp_call', 'function_call_outputs']) {
      const result = decode(itemCreate({ type }, { event_id: 'i2' }))
      expectError(result, invalid('item.type', 'i2'))
      if (!result.ok) expect(result.error.message).toContain(JSON.stringify(type))
    }
  })

  it('rejects an unknown role', () => {
    expectError(decode(itemCreate({ type: 'message', role: 'tool', content: [] })), invalid('item.role'))
  })

  it('rejects string content', () => {
    expectError(decode(itemCreate({ type: 'message', role: 'user', content: 'hi' })), invalid('item.content'))
  })

  it('rejects wrong field types in function items', () => {
    expectError(decode(itemCreate({ type: 'function_call', call_id: 'c', name: 'n', arguments: { a: 1 } })), invalid('item.arguments'))
    expectError(decode(itemCreate({ type: 'function_call', name: 'n', arguments: '{}' })), invalid('item.call_id'))
    expectError(decode(itemCreate({ type: 'function_call_output', call_id: 'c', output: 5 })), invalid('item.output'))
  })

  it('rejects an unknown item field', () => {
    expectError(decode(itemCreate({ ...userText('x'), extra: 1 })), invalid('item.extra'))
  })

  it('rejects parts a role cannot carry', () => {
    expectError(decode(itemCreate({ type: 'message', role: 'user', content: [{ type: 'output_text', text: 'x' }] })), invalid('item.content[0].type'))
    expectError(decode(itemCreate({ type: 'message', role: 'assistant', content: [{ type: 'input_text', text: 'x' }] })), invalid('item.content[0].type'))
    expectError(decode(itemCreate({ type: 'message', role: 'system', content: [{ type: 'input_image', image_url: 'https://example.test/a.png' }] })), invalid('item.content[0].type'))
    expectError(decode(itemCreate({ type: 'message', role: 'system', content: [{ type: 'input_text', text: 'ok' }, { type: 'text', text: 'x' }] })), invalid('item.content[1].type'))
  })

  it('rejects an input_image without a valid url', () => {
    const image = (part: Record<string, unknown>) => itemCreate({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'see' }, { type: 'input_image', ...part }] })
    expectError(decode(image({})), invalid('item.content[1].image_url'))
    expectError(decode(image({ image_url: 'file:///etc/passwd' })), invalid('item.content[1].image_url'))
    expectError(decode(image({ image_url: 'data:text/html,<b>x</b>' })), invalid('item.content[1].image_url'))
    expectError(decode(image({ image_url: '' })), invalid('item.content[1].image_url'))
  })

  it('rejects a text part without text', () => {
    expectError(decode(itemCreate({ type: 'message', role: 'user', content: [{ type: 'input_text' }] })), invalid('item.content[0].text'))
    expectError(decode(itemCreate({ type: 'message', role: 'assistant', content: [{ type: 'output_text' }] })), invalid('item.content[0].text'))
  })

  it('rejects audio parts with audio_not_supported', () => {
    expectError(decode(itemCreate({ type: 'message', role: 'user', content: [{ type: 'input_audio', audio: 'AAAA' }] }, { event_id: 'au' })), {
      code: 'GW_ERR_PROTOCOL_AUDIO_UNSUPPORTED',
      wire: 'audio_not_supported',
      param: 'item.content[0].type',
      eventId: 'au'
    })
    expectError(decode(itemCreate({ type: 'message', role: 'assistant', content: [{ type: 'output_audio', transcript: 'hi' }] })), {
      code: 'GW_ERR_PROTOCOL_AUDIO_UNSUPPORTED',
      wire: 'audio_not_supported',
      param: 'item.content[0].type'
    })
  })

  it('rejects an unknown part type', () => {
    expectError(decode(itemCreate({ type: 'message', role: 'user', content: [{ type: 'input_file', text: 'x' }] })), invalid(/^item\.content(\.0|\[0\])\.type$/))
  })
})

describe('codec: item size', () => {
  /** An item whose JSON has fewer UTF-16 code units than UTF-8 bytes. */
  const multiByte = userText('é€🎉'.repeat(20))
  const chars = JSON.stringify(multiByte).length
  const bytes = Buffer.byteLength(JSON.stringify(multiByte))

  it('counts UTF-8 bytes, not characters', () => {
    expect(bytes).toBeGreaterThan(chars)
    const small = createCodec({ maxItemBytes: bytes - 1 })
    expect(chars).toBeLessThanOrEqual(bytes - 1)
    const result = small.decode(JSON.stringify(itemCreate(multiByte, { event_id: 'big' })), false)
    expectError(result, { code: 'GW_ERR_PROTOCOL_ITEM_TOO_LARGE', wire: 'item_too_large', param: 'item', eventId: 'big' })
    if (!result.ok) {
      expect(result.error.message).toContain(String(bytes))
      expect(result.error.message).toContain(String(bytes - 1))
      expect(result.error.statusCode).toBe(413)
    }
  })

  it('accepts an item of exactly maxItemBytes', () => {
    const exact = createCodec({ maxItemBytes: bytes })
    expect(exact.decode(JSON.stringify(itemCreate(multiByte)), false).ok).toBe(true)
  })

  it('checks each response.input item against the limit', () => {
    const small = createCodec({ maxItemBytes: bytes - 1 })
    const result = small.decode(JSON.stringify({ type: 'response.create', response: { conversation: 'none', input: [userText('hi'), multiByte] } }), false)
    expectError(result, { code: 'GW_ERR_PROTOCOL_ITEM_TOO_LARGE', wire: 'item_too_large', param: 'response.input[1]' })
  })

  it('limits each item, not the whole event', () => {
    const small = createCodec({ maxItemBytes: bytes })
    const result = small.decode(JSON.stringify({ type: 'response.create', response: { input: [multiByte, multiByte, multiByte] } }), false)
    expect(result.ok).toBe(true)
  })
})

describe('codec: response.input items', () => {
  const withInput = (input: unknown[], eventId = 'ri') => ({ type: 'response.create', event_id: eventId, response: { conversation: 'none', input } })

  it('rejects an invalid input item with a response.input[i] param', () => {
    expectError(decode(withInput([userText('ok'), { type: 'message', role: 'user', content: [{ type: 'input_text' }] }])), invalid('response.input[1].content[0].text', 'ri'))
    expectError(decode(withInput([{ type: 'function_call_output', call_id: 'c' }])), invalid('response.input[0].output', 'ri'))
    expectError(decode(withInput([{ type: 'nope' }])), invalid('response.input[0].type', 'ri'))
    expectError(decode(withInput([{ role: 'user' }])), invalid('response.input[0].type', 'ri'))
    expectError(decode(withInput([{ type: 'message', role: 'user', content: [{ type: 'output_text', text: 'x' }] }])), invalid('response.input[0].content[0].type', 'ri'))
  })

  it('rejects audio parts in input items', () => {
    expectError(decode(withInput([{ type: 'message', role: 'user', content: [{ type: 'input_audio', audio: 'AAAA' }] }])), {
      code: 'GW_ERR_PROTOCOL_AUDIO_UNSUPPORTED',
      wire: 'audio_not_supported',
      param: 'response.input[0].content[0].type',
      eventId: 'ri'
    })
  })

  it('rejects input entries that are not objects', () => {
    expectError(decode(withInput(['hello'])), invalid(/^response\.input(\.0|\[0\])$/, 'ri'))
  })

  it('reports the first bad input item', () => {
    expectError(decode(withInput([userText('ok'), { type: 'a' }, { type: 'b' }])), invalid('response.input[1].type', 'ri'))
  })
})

describe('codec: nesting and image size', () => {
  const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`

  it('refuses events nested deeper than MAX_JSON_DEPTH, without overflowing the stack', () => {
    const ok = codec.decode('{"type":"response.create","event_id":"e1","response":{"metadata":{"x":"y"}}}', false)
    expect(ok.ok).toBe(true)
    for (const depth of [MAX_JSON_DEPTH, 5000]) {
      const result = codec.decode(`{"type":"session.update","session":{"tools":[{"type":"function","name":"f","parameters":${nested(depth)}}]}}`, false)
      expect(result.ok).toBe(false)
      if (!result.ok) expect(result.error).toMatchObject({ wire: 'invalid_json', message: expect.stringContaining('nested deeper than 64 levels') })
    }
    const shallow = codec.decode(`{"type":"session.update","session":{"tools":[{"type":"function","name":"f","parameters":${nested(20)}}]}}`, false)
    expect(shallow.ok).toBe(true)
  })

  it('measures data-URL images by their decoded bytes against MAX_IMAGE_BYTES; http(s) URLs pass', () => {
    const images = createCodec({ maxItemBytes: 64 * 1024, maxImageBytes: 300 })
    const event = (url: string) => JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'see' }, { type: 'input_image', image_url: url }] } })
    const b64 = (bytes: number) => `data:image/png;base64,${Buffer.alloc(bytes, 1).toString('base64')}`
    expect(images.decode(event(b64(300)), false).ok).toBe(true)
    expect(images.decode(event(b64(299)), false).ok).toBe(true)
    const big = images.decode(event(b64(301)), false)
    expect(big.ok).toBe(false)
    if (!big.ok) expect(big.error).toMatchObject({ wire: 'image_too_large', param: 'item.content[1].image_url', message: 'The image is 301 bytes, over MAX_IMAGE_BYTES (300)' })
    const raw = images.decode(event(`data:image/svg+xml,${'x'.repeat(301)}`), false)
    expect(raw.ok).toBe(false)
    expect(images.decode(event('https://example.test/cat.png'), false).ok).toBe(true)
  })
})
