import { describe, expect, it } from 'vitest'
import type { ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import {
  buildChunks,
  buildCompletion,
  defaultReplyText,
  fragmentArguments,
  resolveScenario,
  tokenize,
  type CompletionMeta
} from '../../src/simulator/scenario.js'

const meta: CompletionMeta = {
  id: 'chatcmpl-sim-abc123',
  created: 1_700_000_000,
  model: 'gpt-4o',
  includeUsage: true,
  promptTokens: 12
}

const isHighSurrogate = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff
const isLowSurrogate = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff

/** Asserts the deltas are non-empty, lossless, and never cut a surrogate pair. */
function expectLossless (text: string): string[] {
  const deltas = tokenize(text)
  expect(deltas.join('')).toBe(text)
  for (const delta of deltas) {
    expect(delta.length).toBeGreaterThan(0)
    expect(isLowSurrogate(delta.charCodeAt(0))).toBe(false)
    expect(isHighSurrogate(delta.charCodeAt(delta.length - 1))).toBe(false)
  }
  return deltas
}

/** Content deltas and their order, from a chunk list. */
function contentOf (chunks: ChatCompletionChunk[]): string {
  return chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')
}

describe('tokenize', () => {
  it('splits ASCII into word pieces that carry their leading space', () => {
    expect(expectLossless('Hello world, friend!')).toEqual(['Hello', ' world', ',', ' friend', '!'])
  })

  it('cuts long words into pieces and keeps whitespace runs and newlines', () => {
    const text = 'Antidisestablishmentarianism  is\n\nlong\t 1234567 tokens.'
    const deltas = expectLossless(text)
    expect(deltas.every((delta) => Array.from(delta).length <= 10)).toBe(true)
    expect(deltas.length).toBeGreaterThan(8)
  })

  it.each([
    ['emoji with skin tones and flags', 'Thumbs 👍🏽 and flags 🇫🇷🇯🇵 and a smile 😀!'],
    ['ZWJ sequences', 'Family 👨‍👩‍👧‍👦, rainbow flag 🏳️‍🌈, technologist 👩🏾‍💻.'],
    ['CJK', '漢字とひらがな、カタカナ。한국어 문장입니다. 中文句子。'],
    ['combining marks', 'Cafe\u0301 nai\u0308ve Z\u0351\u0352a\u0353l\u0354g\u0355o\u0356 and a\u0300\u0301\u0302\u0303'],
    ['RTL and mixed scripts', 'مرحبا بالعالم — שלום עולם — Привет, мир — γειά σου'],
    ['math and astral symbols', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 ∑∫√ 𓀀𓀁'],
    ['empty string', '']
  ])('is lossless for %s', (_name, text) => {
    expectLossless(text)
  })

  it('is lossless for pseudo-random strings drawn from many scripts', () => {
    const pool = Array.from('aZ09 \n\t.,!?é\u0301ß漢字かナ한😀👍🏽🇫\u200d♀️🏳️𝔘\u0651ب')
    let seed = 42
    const next = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed
    }
    for (let round = 0; round < 200; round++) {
      let text = ''
      const length = next() % 40
      for (let i = 0; i < length; i++) text += pool[next() % pool.length] ?? ''
      expectLossless(text)
    }
  })

  it('never splits a surrogate pair even when a lone surrogate is present', () => {
    const text = 'a\ud800b😀\udc00'
    const deltas = tokenize(text)
    expect(deltas.join('')).toBe(text)
    expect(deltas.some((delta) => delta.includes('😀'))).toBe(true)
  })
})

describe('fragmentArguments', () => {
  it('splits arguments into 3–7 code point fragments, losslessly', () => {
    const args = '{"city":"Zürich","unit":"celsius","note":"☀️ sunny 晴れ"}'
    const fragments = fragmentArguments(args)
    expect(fragments.join('')).toBe(args)
    for (const fragment of fragments.slice(0, -1)) {
      const size = Array.from(fragment).length
      expect(size).toBeGreaterThanOrEqual(3)
      expect(size).toBeLessThanOrEqual(7)
    }
    expect(new Set(fragments.slice(0, -1).map((fragment) => Array.from(fragment).length)).size).toBeGreaterThan(1)
  })

  it('returns no fragments for empty arguments', () => {
    expect(fragmentArguments('')).toEqual([])
  })
})

describe('defaultReplyText', () => {
  it('quotes the last user message and counts user turns', () => {
    const messages: ChatCompletionMessageParam[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'First question' },
      { role: 'assistant', content: 'First answer' },
      { role: 'user', content: [{ type: 'text', text: 'Second' }, { type: 'image_url', image_url: { url: 'data:,' } }, { type: 'text', text: 'question' }] }
    ]
    const reply = defaultReplyText(messages)
    expect(reply.startsWith('Simulated reply to "Second question" (turn 2).')).toBe(true)
    expect(defaultReplyText(messages.slice(0, 2)).startsWith('Simulated reply to "First question" (turn 1).')).toBe(true)
    expect(defaultReplyText(messages)).toBe(reply)
  })

  it('truncates the quote to 60 code points and describes image-only messages', () => {
    const long = '😀'.repeat(70)
    expect(defaultReplyText([{ role: 'user', content: long }])).toContain(`"${'😀'.repeat(60)}…"`)
    expect(defaultReplyText([{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }])).toContain('"[image]"')
  })
})

describe('resolveScenario', () => {
  const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: 'Hi' }]

  it('lets the queued scenario win over the defaults and derives text from the request', () => {
    const scenario = resolveScenario({ tokenDelayMs: 5, text: 'default' }, { tokenDelayMs: 1 }, messages)
    expect(scenario).toEqual({ tokenDelayMs: 1, text: 'default' })
    expect(resolveScenario({ tokenDelayMs: 5 }, undefined, messages).text).toMatch(/^Simulated reply to "Hi" \(turn 1\)\./)
  })

  it('derives no text for a tool-call scenario', () => {
    expect(resolveScenario({}, { toolCalls: [{ name: 'f', arguments: '{}' }] }, messages).text).toBeUndefined()
  })
})

describe('buildChunks', () => {
  it('streams a text reply as role chunk, content deltas, finish chunk and usage chunk', () => {
    const text = 'Hello there, how are you? 👋'
    const chunks = buildChunks({ text }, meta)
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: 'gpt-4o' })
      expect(chunk.system_fingerprint).toMatch(/^fp_/)
    }
    expect(chunks[0]?.choices).toEqual([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }])
    expect(chunks.slice(1, -2).map((chunk) => chunk.choices[0]?.delta)).toEqual(tokenize(text).map((content) => ({ content })))
    expect(contentOf(chunks)).toBe(text)
    expect(chunks.at(-2)?.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }])
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true)
    const last = chunks.at(-1)
    expect(last?.choices).toEqual([])
    expect(last?.usage).toEqual({ prompt_tokens: 12, completion_tokens: tokenize(text).length, total_tokens: 12 + tokenize(text).length })
  })

  it('ends with finish_reason length when asked', () => {
    const chunks = buildChunks({ text: 'cut short', finishReason: 'length' }, meta)
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('length')
    expect(chunks.filter((chunk) => chunk.choices[0]?.finish_reason != null)).toHaveLength(1)
  })

  it('uses the usage the scenario fixes', () => {
    const chunks = buildChunks({ text: 'x', usage: { prompt_tokens: 100, completion_tokens: 7 } }, meta)
    expect(chunks.at(-1)?.usage).toEqual({ prompt_tokens: 100, completion_tokens: 7, total_tokens: 107 })
  })

  it.each([
    ['usage: false', { text: 'x', usage: false as const }, meta],
    ['include_usage off', { text: 'x' }, { ...meta, includeUsage: false }]
  ])('omits the usage chunk and the usage field with %s', (_name, scenario, chunkMeta) => {
    const chunks = buildChunks(scenario, chunkMeta)
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop')
    expect(chunks.every((chunk) => !('usage' in chunk))).toBe(true)
  })

  it('streams two parallel tool calls with headers and fragmented arguments', () => {
    const toolCalls = [
      { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' },
      { name: 'get_time', arguments: '{"timezone":"Europe/Paris"}', id: 'call_fixed' }
    ]
    const chunks = buildChunks({ toolCalls }, meta)
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: null })
    expect(chunks.at(-2)?.choices[0]).toMatchObject({ delta: {}, finish_reason: 'tool_calls' })

    const deltas = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? [])
    expect(deltas.every((delta) => delta.index === 0 || delta.index === 1)).toBe(true)
    const headers = deltas.filter((delta) => delta.id !== undefined)
    expect(headers).toEqual([
      { index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather', arguments: '' } },
      { index: 1, id: 'call_fixed', type: 'function', function: { name: 'get_time', arguments: '' } }
    ])
    const fragments = deltas.filter((delta) => delta.id === undefined)
    for (const fragment of fragments) expect(Object.keys(fragment).sort()).toEqual(['function', 'index'])
    // Each call's header precedes its fragments, and call 0 is complete before call 1 starts.
    expect(deltas.map((delta) => delta.index)).toEqual([...deltas.map((delta) => delta.index)].sort())

    toolCalls.forEach((call, index) => {
      const ofCall = fragments.filter((delta) => delta.index === index)
      expect(ofCall.length).toBeGreaterThan(3)
      expect(ofCall.map((delta) => delta.function?.arguments ?? '').join('')).toBe(call.arguments)
    })
    expect(chunks.every((chunk) => (chunk.choices[0]?.delta.tool_calls?.length ?? 0) <= 1)).toBe(true)
  })

  it('streams text before tool calls when both are given', () => {
    const chunks = buildChunks({ text: 'Let me check.', toolCalls: [{ name: 'f', arguments: '{}' }] }, meta)
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: '' })
    expect(contentOf(chunks)).toBe('Let me check.')
    const firstToolChunk = chunks.findIndex((chunk) => chunk.choices[0]?.delta.tool_calls !== undefined)
    const lastTextChunk = chunks.findLastIndex((chunk) => (chunk.choices[0]?.delta.content ?? '') !== '')
    expect(firstToolChunk).toBeGreaterThan(lastTextChunk)
  })
})

describe('buildCompletion', () => {
  it('assembles the same reply as a chat.completion object', () => {
    const completion = buildCompletion({ text: 'Hi 👋' }, meta)
    expect(completion).toMatchObject({ id: meta.id, object: 'chat.completion', model: 'gpt-4o' })
    expect(completion.choices[0]).toEqual({
      index: 0,
      message: { role: 'assistant', content: 'Hi 👋', refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: 'stop'
    })
    expect(completion.usage?.total_tokens).toBe(12 + tokenize('Hi 👋').length)
  })

  it('carries tool calls with null content, and no usage when turned off', () => {
    const completion = buildCompletion({ toolCalls: [{ name: 'f', arguments: '{"a":1}', id: 'call_1' }], usage: false }, meta)
    expect(completion.choices[0]?.message).toMatchObject({
      content: null,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }]
    })
    expect(completion.choices[0]?.finish_reason).toBe('tool_calls')
    expect('usage' in completion).toBe(false)
  })
})
