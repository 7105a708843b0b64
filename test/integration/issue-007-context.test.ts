/**
 * Issue 7: the context budget, end to end. A long dialog with tool calls goes upstream cut to
 * the model's budget (what the simulator received is checked), following session.truncation;
 * the stored conversation keeps every item.
 */
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base'
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import { afterEach, describe, expect, it } from 'vitest'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient, userMessage, type ServerEventLike } from '../helpers/ws-client.js'

let gw: TestGateway | undefined
let client: TestClient | undefined

afterEach(async () => {
  await client?.close()
  await gw?.close()
  client = undefined
  gw = undefined
})

const words = (n: number, seed: string): string => Array.from({ length: n }, (_, i) => `${seed}${i % 10}`).join(' ')
const create = (item: Record<string, unknown>): Record<string, unknown> => ({ type: 'conversation.item.create', item })

/**
 * Adds a long dialog as items, one turn at a time (each turn's items acknowledged before the next
 * is sent): per turn a question, a function call with its output, and an answer.
 */
async function addDialog (to: TestClient, turns: number): Promise<void> {
  for (let t = 0; t < turns; t++) {
    to.send(create({ id: `item_u${t}`, type: 'message', role: 'user', content: [{ type: 'input_text', text: `question ${t}: ${words(40, 'q')}` }] }))
    to.send(create({ type: 'function_call', call_id: `call_${t}`, name: 'lookup', arguments: `{"turn":${t}}` }))
    to.send(create({ type: 'function_call_output', call_id: `call_${t}`, output: `{"result":"${words(15, 'r')}"}` }))
    to.send(create({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: `answer ${t}: ${words(40, 'a')}` }] }))
    for (let i = 0; i < 4; i++) await to.next('conversation.item.done')
  }
}

function textOf (message: ChatCompletionMessageParam): string {
  const content = message.content
  if (typeof content === 'string') return content
  return (content ?? []).map((part) => 'text' in part ? part.text : '').join('')
}

/** Each tool message answers a call of the assistant message right before its run of tool messages. */
function expectPairsIntact (messages: readonly ChatCompletionMessageParam[]): void {
  let open = new Set<string>()
  for (const message of messages) {
    if (message.role === 'tool') {
      expect(open.has(message.tool_call_id), `tool message ${message.tool_call_id} without its call`).toBe(true)
      open.delete(message.tool_call_id)
      continue
    }
    expect([...open], 'calls without outputs').toEqual([])
    open = new Set(message.role === 'assistant' ? (message.tool_calls ?? []).map((call) => call.id) : [])
  }
  expect([...open], 'calls without outputs').toEqual([])
}

const responseOf = (events: readonly ServerEventLike[]): Record<string, any> =>
  (events.find((e) => e.type === 'response.done')?.['response'] ?? {}) as Record<string, any>

async function respond (to: TestClient): Promise<ServerEventLike[]> {
  to.send({ type: 'response.create' })
  return to.until('response.done')
}

describe('context budget', () => {
  it('auto: the oldest turns are left out of the upstream request, the stored history keeps them', async () => {
    gw = await startGateway({ env: { CONTEXT_WINDOW_TOKENS: 'gpt-4o=4096' } })
    client = await TestClient.connect(gw.url)
    client.send({ type: 'session.update', session: { instructions: 'Be brief.', max_output_tokens: 1024 } })
    await addDialog(client, 40)
    client.send(userMessage('the latest question'))
    const events = await respond(client)
    expect(responseOf(events)['status']).toBe('completed')

    const sent = gw.sim.requests[0]?.body.messages ?? []
    const stored = 1 + 40 * 4 + 1
    expect(sent[0]).toEqual({ role: 'system', content: 'Be brief.' })
    expect(sent.at(-1)).toEqual({ role: 'user', content: 'the latest question' })
    expect(sent.length).toBeLessThan(stored / 2)
    expect(sent[1]?.role).toBe('user') // the kept part starts at a turn
    expect(textOf(sent[1] ?? { role: 'user', content: '' })).toMatch(/^question \d+:/)
    expectPairsIntact(sent)
    expect(sent.some((m) => m.role === 'tool')).toBe(true)
    // Under the budget (4096 minus the 1024 reserved for the reply), counted independently.
    const contentTokens = sent.reduce((sum, m) => sum + countTokens(textOf(m)) + (m.role === 'assistant' ? (m.tool_calls ?? []).reduce((s, c) => s + ('function' in c ? countTokens(c.function.arguments) : 0), 0) : 0), 0)
    expect(contentTokens).toBeLessThanOrEqual(3072)
    expect(contentTokens).toBeGreaterThan(3072 * 0.7) // and not cut much more than needed
    expect(gw.log.lines.some((l) => l['msg'] === 'history cut to the context budget' && Number(l['dropped']) > 0)).toBe(true)

    // Nothing was removed from the conversation: the first turn is still there.
    client.send({ type: 'conversation.item.retrieve', item_id: 'item_u0' })
    const retrieved = await client.next('conversation.item.retrieved')
    expect((retrieved['item'] as Record<string, unknown>)['id']).toBe('item_u0')
  })

  it('retention_ratio: after a cut, the next turn\'s request extends the previous one (a stable prefix)', async () => {
    gw = await startGateway({ env: { CONTEXT_WINDOW_TOKENS: 'gpt-4o=4096' } })
    client = await TestClient.connect(gw.url)
    client.send({ type: 'session.update', session: { max_output_tokens: 1024, truncation: { type: 'retention_ratio', retention_ratio: 0.5 } } })
    await addDialog(client, 40)
    gw.sim.enqueue({ text: 'first reply' }, { text: 'second reply' })
    client.send(userMessage('turn one'))
    await respond(client)
    client.send(userMessage('turn two'))
    await respond(client)

    const first = gw.sim.requests[0]?.body.messages ?? []
    const second = gw.sim.requests[1]?.body.messages ?? []
    expect(first.length).toBeLessThan(40 * 2)
    expectPairsIntact(first)
    const tokens = first.reduce((sum, m) => sum + countTokens(textOf(m)), 0)
    expect(tokens).toBeLessThanOrEqual(3072)
    expect(second.slice(0, first.length)).toEqual(first)
    expect(second.slice(first.length)).toEqual([{ role: 'assistant', content: 'first reply' }, { role: 'user', content: 'turn two' }])
  })

  it('disabled: an over-budget request fails with context_length_exceeded and nothing goes upstream', async () => {
    gw = await startGateway({ env: { CONTEXT_WINDOW_TOKENS: 'gpt-4o=4096' } })
    client = await TestClient.connect(gw.url)
    client.send({ type: 'session.update', session: { max_output_tokens: 1024, truncation: 'disabled' } })
    client.send(userMessage('short'))
    expect(responseOf(await respond(client))['status']).toBe('completed') // under the budget: sent whole
    await addDialog(client, 40)
    const events = await respond(client)
    const response = responseOf(events)
    expect(response['status']).toBe('failed')
    expect(response['status_details']?.error).toMatchObject({ type: 'invalid_request_error', code: 'context_length_exceeded' })
    expect(response['status_details']?.error.message).toMatch(/model "gpt-4o" takes 3072 .*truncation is "disabled"/)
    expect(gw.sim.requests).toHaveLength(1)

    // Switching back to auto sends the cut history.
    client.send({ type: 'session.update', session: { truncation: 'auto' } })
    expect(responseOf(await respond(client))['status']).toBe('completed')
    expect(gw.sim.requests).toHaveLength(2)
  })

  it('rejects a malformed truncation in session.update', async () => {
    gw = await startGateway()
    client = await TestClient.connect(gw.url)
    client.send({ type: 'session.update', event_id: 'evt_t', session: { truncation: { type: 'retention_ratio', retention_ratio: 1.5 } } })
    const error = await client.next('error')
    expect(error['error']).toMatchObject({ code: 'invalid_value', event_id: 'evt_t' })
    expect(String((error['error'] as Record<string, unknown>)['param'])).toMatch(/^session\.truncation/)
  })
})
