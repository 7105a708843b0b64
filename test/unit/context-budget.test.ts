/**
 * The context budget: model windows, the cut planner, token counts, and fitting long dialogs
 * (with tool calls and MCP calls) into a budget without splitting a call from its output.
 */
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base'
import { beforeAll, describe, expect, it } from 'vitest'
import { inputBudget, knownModel, loadTokenizer, planStart, TokenCounter, tokenUpperBound, type ContextBudgetConfig } from '../../src/conversation/context-budget.js'
import { fitToContext, toChatMessages, withContextBudget } from '../../src/conversation/history.js'
import { isGatewayError } from '../../src/errors.js'
import type { Item } from '../../src/protocol/events.js'
import type { ChatMessage, ModelProvider, ModelRequest, Truncation } from '../../src/providers/provider.js'

const config = (windows: ContextBudgetConfig['windows'] = []): ContextBudgetConfig => ({ windows, defaultWindowTokens: 32_768, defaultReserveTokens: 4096 })

const meta = { object: 'realtime.item' as const, status: 'completed' as const }
const user = (id: string, text: string): Item => ({ id, ...meta, type: 'message', role: 'user', content: [{ type: 'input_text', text }] })
const assistant = (id: string, text: string): Item => ({ id, ...meta, type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] })
const system = (id: string, text: string): Item => ({ id, ...meta, type: 'message', role: 'system', content: [{ type: 'input_text', text }] })
const call = (id: string, callId: string, args: string): Item => ({ id, ...meta, type: 'function_call', call_id: callId, name: 'lookup', arguments: args })
const output = (id: string, callId: string, out: string): Item => ({ id, ...meta, type: 'function_call_output', call_id: callId, output: out })
const mcp = (id: string, args: string, out: string): Item => ({ id, ...meta, type: 'mcp_call', server_label: 'shop', name: 'find_order', arguments: args, output: out })

/** Words that tokenize to about one token each. */
const words = (n: number, seed: string): string => Array.from({ length: n }, (_, i) => `${seed}${i % 10}`).join(' ')

/**
 * A long dialog: per turn a user question, then (every other turn) a tool call with its output,
 * (every third turn) an MCP call, and the assistant's answer. About 60–100 tokens per turn.
 */
function dialog (turns: number): Item[] {
  const items: Item[] = [system('sys', 'You are a careful shop assistant.')]
  for (let t = 0; t < turns; t++) {
    items.push(user(`u${t}`, `question ${t}: ${words(20, 'q')}`))
    if (t % 2 === 0) items.push(call(`c${t}`, `call_${t}`, `{"order":"${t}"}`), output(`o${t}`, `call_${t}`, `{"status":"shipped ${words(10, 's')}"}`))
    if (t % 3 === 0) items.push(mcp(`m${t}`, `{"id":${t}}`, `order ${t} ${words(10, 'm')}`))
    items.push(assistant(`a${t}`, `answer ${t}: ${words(20, 'a')}`))
  }
  return items
}

const request = (items: Item[], extra: Partial<ModelRequest> = {}): ModelRequest =>
  ({ model: 'gpt-4o', messages: toChatMessages(items, 'Answer briefly.'), ...extra })

/** Every tool message directly follows the assistant message that made its call (or a sibling tool message). */
function expectPairsIntact (messages: readonly ChatMessage[]): void {
  const open = new Set<string>()
  for (const message of messages) {
    if (message.role === 'assistant') {
      open.clear()
      for (const toolCall of message.toolCalls ?? []) open.add(toolCall.id)
    } else if (message.role === 'tool') {
      expect(open.has(message.toolCallId), `tool message ${message.toolCallId} without its call`).toBe(true)
      open.delete(message.toolCallId)
    } else {
      expect([...open], 'tool calls without their outputs').toEqual([])
      open.clear()
    }
  }
  expect([...open], 'tool calls without their outputs').toEqual([])
}

/** The text of a message, to find it again. */
const textOf = (message: ChatMessage | undefined): string =>
  message === undefined ? '' : typeof message.content === 'string' ? message.content : message.content === null ? '' : message.content.map((p) => p.type === 'text' ? p.text : '').join('')

describe('inputBudget', () => {
  it('knows the GPT-4o, GPT-4.1 and o-series windows and reserves their largest reply', () => {
    expect(inputBudget('gpt-4o', undefined, config())).toEqual({ window: 128_000, reserve: 16_384, budget: 111_616 })
    expect(inputBudget('gpt-4o-mini-2024-07-18', undefined, config()).budget).toBe(128_000 - 16_384)
    expect(inputBudget('gpt-4o-2024-05-13', undefined, config()).reserve).toBe(4096)
    expect(inputBudget('gpt-4.1-nano', undefined, config())).toEqual({ window: 1_047_576, reserve: 32_768, budget: 1_047_576 - 32_768 })
    expect(inputBudget('o3', undefined, config())).toEqual({ window: 200_000, reserve: 100_000, budget: 100_000 })
    expect(inputBudget('o1-mini', undefined, config()).window).toBe(128_000)
  })

  it('reads a fine-tune by its base model', () => {
    expect(knownModel('ft:gpt-4o-mini-2024-07-18:acme::abc123')).toEqual({ window: 128_000, maxOutput: 16_384 })
    expect(knownModel('ft:davinci-002:acme::x')).toBeUndefined()
  })

  it('reserves the request\'s max output tokens, capped by the model\'s largest reply and half the window', () => {
    expect(inputBudget('gpt-4o', 1000, config()).budget).toBe(127_000)
    expect(inputBudget('gpt-4o', 500_000, config()).reserve).toBe(16_384)
    expect(inputBudget('local-model', 8000, config()).reserve).toBe(8000)
    expect(inputBudget('local-model', 100_000, config()).reserve).toBe(16_384) // half of the 32768 default
  })

  it('uses configured windows (exact before the longest prefix) before the table, and the default last', () => {
    const windows = [{ model: 'gpt-4o*', tokens: 10_000 }, { model: 'gpt-4o-mini*', tokens: 20_000 }, { model: 'gpt-4o-mini', tokens: 30_000 }]
    expect(inputBudget('gpt-4o-2024-08-06', 100, config(windows)).window).toBe(10_000)
    expect(inputBudget('gpt-4o-mini-2024-07-18', 100, config(windows)).window).toBe(20_000)
    expect(inputBudget('gpt-4o-mini', 100, config(windows)).window).toBe(30_000)
    expect(inputBudget('llama3', undefined, config(windows))).toEqual({ window: 32_768, reserve: 4096, budget: 28_672 })
  })
})

describe('planStart', () => {
  it('keeps everything that fits', () => {
    expect(planStart([10, 10, 10], 2, 30, 'auto')).toBe(0)
    expect(planStart([10, 10, 10], 2, 30, 'disabled')).toBe(0)
  })

  it('auto: leaves out the oldest turns until the rest fits', () => {
    expect(planStart([10, 10, 10, 10], 3, 25, 'auto')).toBe(2)
    expect(planStart([50, 1, 1, 1], 3, 10, 'auto')).toBe(1)
  })

  it('disabled: refuses instead of cutting', () => {
    expect(planStart([10, 10, 10, 10], 3, 25, 'disabled')).toBeUndefined()
  })

  it('refuses when the mandatory turns alone are over the limit, and keeps them when they fit', () => {
    expect(planStart([1, 1, 30], 2, 25, 'auto')).toBeUndefined()
    expect(planStart([5, 10, 10], 1, 20, 'auto')).toBe(1)
    // The walk may drop more than the mandatory turns allow at ratio 0; they are put back.
    expect(planStart([5, 5, 5, 5], 2, 12, { type: 'retention_ratio', retention_ratio: 0 })).toBe(2)
  })

  it('retention_ratio: cuts down to the fraction, and the cut point only moves when the history overflows again', () => {
    const truncation: Truncation = { type: 'retention_ratio', retention_ratio: 0.5 }
    const costs: number[] = []
    const starts: number[] = []
    for (let turn = 0; turn < 60; turn++) {
      costs.push(10)
      starts.push(planStart(costs, costs.length - 1, 100, truncation) ?? -1)
    }
    // First overflow at 11 turns (110 > 100): cut to 50 tokens → start 6. Then 5 more turns fit.
    expect(starts.slice(0, 10).every((s) => s === 0)).toBe(true)
    expect(starts[10]).toBe(6)
    expect(new Set(starts.slice(10, 16))).toEqual(new Set([6]))
    expect(starts[16]).toBe(12)
    const moves = starts.filter((s, i) => i > 0 && s !== starts[i - 1]).length
    expect(moves).toBe(9) // one cut every 6 turns, not one per turn as with auto
    const auto = costs.map((_c, i) => planStart(costs.slice(0, i + 1), i, 100, 'auto') ?? -1)
    expect(auto.filter((s, i) => i > 0 && s !== auto[i - 1]).length).toBe(50)
  })
})

describe('TokenCounter', () => {
  beforeAll(async () => { await loadTokenizer() })

  it('counts like the o200k encoding, special-token text included, and caches long texts', () => {
    const counter = new TokenCounter(2)
    const long = words(400, 'x')
    expect(counter.count('Hello world, how are you?')).toBe(countTokens('Hello world, how are you?'))
    expect(counter.count('a <|endoftext|> b')).toBeGreaterThan(3)
    expect(counter.count(long)).toBe(countTokens(long))
    expect(counter.hits).toBe(0)
    expect(counter.count(long)).toBe(countTokens(long))
    expect(counter.hits).toBe(1)
    // Bounded: two other long texts push the first one out.
    counter.count(words(300, 'y'))
    counter.count(words(300, 'z'))
    counter.count(long)
    expect(counter.hits).toBe(1)
  })

  it('bounds a text\'s tokens by its UTF-8 bytes', () => {
    for (const text of ['hello', 'ünïcödé ✓', words(100, 'w'), '日本語のテキスト']) expect(countTokens(text)).toBeLessThanOrEqual(tokenUpperBound(text))
  })
})

describe('fitToContext', () => {
  const counter = new TokenCounter()
  const small = config([{ model: 'gpt-4o', tokens: 4096 }])

  it('leaves a short request untouched, without counting', async () => {
    const req = request(dialog(2))
    const fit = await fitToContext(req, config(), counter)
    expect(fit.request).toBe(req)
    expect(fit.dropped).toBe(0)
    expect(fit.inputTokens).toBeUndefined()
  })

  it('auto: leaves out the oldest turns of a long dialog, never splitting a call from its output', async () => {
    const items = dialog(80)
    const req = request(items, { maxOutputTokens: 1024 })
    const fit = await fitToContext(req, small, counter)
    const sent = fit.request.messages
    expect(fit.budget).toBe(4096 - 1024)
    expect(fit.dropped).toBeGreaterThan(100)
    expect(sent.length + fit.dropped).toBe(req.messages.length)
    expect(fit.inputTokens).toBeLessThanOrEqual(fit.budget)
    // The instructions and the system item stay; the latest turn stays; calls keep their outputs.
    expect(sent[0]).toEqual({ role: 'system', content: 'Answer briefly.' })
    expect(sent[1]).toEqual({ role: 'system', content: 'You are a careful shop assistant.' })
    expect(sent.at(-1)).toEqual(req.messages.at(-1))
    expect(sent[2]?.role).toBe('user') // the kept history starts at a turn
    expectPairsIntact(sent)
    expect(sent.some((m) => m.role === 'tool')).toBe(true)
    // What was sent is the newest part of the history, in order.
    const tail = req.messages.slice(req.messages.length - (sent.length - 2))
    expect(sent.slice(2)).toEqual(tail)
    // Minimal: one more (older) turn would not have fitted.
    const older = req.messages.slice(0, req.messages.length - tail.length).filter((m) => m.role !== 'system')
    const lastUser = older.findLastIndex((m) => m.role === 'user')
    const bigger = { ...req, messages: [...sent.slice(0, 2), ...older.slice(lastUser), ...tail], truncation: 'disabled' as const }
    await expect(fitToContext(bigger, small, counter)).rejects.toMatchObject({ code: 'GW_ERR_CONTEXT_LENGTH_EXCEEDED' })
  })

  it('counts tool definitions and images against the budget', async () => {
    const items = dialog(30)
    const plain = await fitToContext(request(items, { maxOutputTokens: 1024 }), small, counter)
    const tools = [{ name: 'lookup', description: words(400, 'd'), parameters: { type: 'object' } }]
    const withTools = await fitToContext(request(items, { maxOutputTokens: 1024, tools }), small, counter)
    expect(withTools.dropped).toBeGreaterThan(plain.dropped)
    const image: Item = { id: 'img', ...meta, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'what is this?' }, { type: 'input_image', image_url: 'https://example.test/a.png' }] }
    const lowImage: Item = { id: 'img', ...meta, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'what is this?' }, { type: 'input_image', image_url: 'https://example.test/a.png', detail: 'low' }] }
    const high = await fitToContext(request([...items, image], { maxOutputTokens: 1024 }), small, counter)
    const low = await fitToContext(request([...items, lowImage], { maxOutputTokens: 1024 }), small, counter)
    expect(high.dropped).toBeGreaterThan(low.dropped)
  })

  it('disabled: rejects an over-budget request with context_length_exceeded instead of cutting', async () => {
    const req = request(dialog(80), { maxOutputTokens: 1024, truncation: 'disabled' })
    const err: unknown = await fitToContext(req, small, counter).catch((e: unknown) => e)
    expect(isGatewayError(err) && err.wire).toBe('context_length_exceeded')
    expect(String((err as Error).message)).toMatch(/"gpt-4o" takes 3072 .*"disabled"/)
    // Under the budget, disabled sends everything.
    const short = request(dialog(3), { maxOutputTokens: 1024, truncation: 'disabled' })
    expect((await fitToContext(short, small, counter)).dropped).toBe(0)
  })

  it('rejects a latest turn that alone is over the budget, whatever the truncation', async () => {
    const req = request([...dialog(3), user('huge', words(5000, 'h'))], { maxOutputTokens: 1024 })
    await expect(fitToContext(req, small, counter)).rejects.toThrow(/the latest turn alone does not fit/)
  })

  it('keeps the whole latest turn: the user message and the tool rounds after it', async () => {
    const items = [...dialog(40), user('last', 'one more'), call('lc', 'call_last', '{"order":"9"}'), output('lo', 'call_last', words(200, 'r'))]
    const fit = await fitToContext(request(items, { maxOutputTokens: 1024 }), small, counter)
    const sent = fit.request.messages
    const at = sent.findIndex((m) => m.role === 'user' && m.content === 'one more')
    expect(at).toBeGreaterThan(0)
    expect(sent.slice(at).map((m) => m.role)).toEqual(['user', 'assistant', 'tool'])
  })

  it('token_limits.post_instructions lowers the limit for the history', async () => {
    const req = request(dialog(20), { maxOutputTokens: 1024 })
    const full = await fitToContext(req, small, counter)
    const limited = await fitToContext({ ...req, truncation: { type: 'retention_ratio', retention_ratio: 1, token_limits: { post_instructions: 600 } } }, small, counter)
    expect(limited.dropped).toBeGreaterThan(full.dropped)
  })

  it('retention_ratio: the request\'s prefix stays the same from turn to turn until the next overflow', async () => {
    const truncation: Truncation = { type: 'retention_ratio', retention_ratio: 0.6 }
    const firstKept: string[] = []
    let items = dialog(1)
    for (let turn = 1; turn < 60; turn++) {
      items = [...items, user(`nu${turn}`, `follow-up ${turn}: ${words(30, 'f')}`), assistant(`na${turn}`, `reply ${turn}: ${words(30, 'r')}`)]
      const fit = await fitToContext(request(items, { maxOutputTokens: 1024, truncation }), small, counter)
      expectPairsIntact(fit.request.messages)
      expect(fit.inputTokens ?? 0).toBeLessThanOrEqual(fit.budget)
      firstKept.push(textOf(fit.request.messages.find((m, i) => i > 1 && m.role !== 'system')))
    }
    const changes = firstKept.filter((text, i) => i > 0 && text !== firstKept[i - 1]).length
    expect(changes).toBeGreaterThan(1)
    expect(changes).toBeLessThan(firstKept.length / 4)
  })

  it('pinned messages alone over the budget: context_length_exceeded', async () => {
    const req: ModelRequest = { model: 'gpt-4o', messages: [{ role: 'system', content: words(5000, 'p') }, { role: 'user', content: 'hi' }], maxOutputTokens: 1024 }
    await expect(fitToContext(req, small, counter)).rejects.toMatchObject({ code: 'GW_ERR_CONTEXT_LENGTH_EXCEEDED' })
  })
})

describe('withContextBudget', () => {
  it('hands the provider the fitted request and reports each cut', async () => {
    const seen: ModelRequest[] = []
    const provider: ModelProvider = {
      async * stream (req) {
        seen.push(req)
        yield { type: 'text', delta: 'ok' }
      }
    }
    const fits: number[] = []
    const budgeted = withContextBudget(provider, config([{ model: 'gpt-4o', tokens: 4096 }]), (fit) => fits.push(fit.dropped))
    const events = []
    for await (const event of budgeted.stream(request(dialog(80), { maxOutputTokens: 1024 }), new AbortController().signal)) events.push(event)
    for await (const event of budgeted.stream(request(dialog(1)), new AbortController().signal)) events.push(event)
    expect(events).toHaveLength(2)
    expect(seen[0]?.messages.length).toBeLessThan(request(dialog(80)).messages.length)
    expect(seen[1]?.messages).toEqual(request(dialog(1)).messages)
    expect(fits).toHaveLength(1)
  })
})
