/**
 * Issue 2: the Realtime (text) protocol over a real socket, against the real simulator
 * through the real openai SDK. Event order, function calls, multi-turn context.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient, textOf } from '../helpers/ws-client.js'

let gw: TestGateway
const clients: TestClient[] = []
async function connect (url = gw.url): Promise<TestClient> {
  const client = await TestClient.connect(url)
  clients.push(client)
  return client
}

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
})

describe('a text reply', () => {
  it('arrives in the GA event order, every event with a unique event_id', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'Hello there, friend.' })
    const client = await connect()
    const created = client.events[0]
    expect(created?.type).toBe('session.created')
    const session = created?.['session'] as Record<string, unknown>
    expect(session['conversation_id']).toMatch(/^conv_/)
    expect(session['output_modalities']).toEqual(['text'])

    const events = await client.ask('Hi!')
    expect(events.map((e) => e.type)).toEqual([
      'conversation.item.added',
      'conversation.item.done',
      'response.created',
      'response.output_item.added',
      'conversation.item.added',
      'response.content_part.added',
      ...Array(events.filter((e) => e.type === 'response.output_text.delta').length).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'conversation.item.done',
      'response.done'
    ])
    expect(textOf(events)).toBe('Hello there, friend.')
    const ids = client.events.map((e) => e.event_id)
    expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true)
    expect(new Set(ids).size).toBe(ids.length)

    const done = events.at(-1)?.['response'] as Record<string, any>
    expect(done['status']).toBe('completed')
    expect(done['conversation_id']).toBe(session['conversation_id'])
    expect(done['output'][0]).toMatchObject({ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'Hello there, friend.' }] })
    expect(done['usage']).toMatchObject({ input_tokens: expect.any(Number), output_tokens: expect.any(Number), total_tokens: expect.any(Number) })
    const added = events.find((e) => e.type === 'response.output_item.added')?.['item'] as Record<string, unknown>
    expect(added['status']).toBe('in_progress')
    const part = events.find((e) => e.type === 'response.content_part.added')?.['part']
    expect(part).toEqual({ type: 'text', text: '' })
  })

  it('reports the usage the upstream sent', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'ok', usage: { prompt_tokens: 17, completion_tokens: 10 } })
    const client = await connect()
    const done = (await client.ask('count')).at(-1)?.['response'] as Record<string, unknown>
    expect(done['usage']).toMatchObject({ input_tokens: 17, output_tokens: 10, total_tokens: 27 })
  })

  it('keeps a unicode reply byte-exact when the upstream splits characters across network chunks', async () => {
    gw = await startGateway()
    const text = 'Grüße 👋🏽 世界! Ελληνικά — e\u0301 👨‍👩‍👧 ok'
    gw.sim.enqueue({ text, chunking: 'bytes' })
    const client = await connect()
    const events = await client.ask('unicode please')
    expect(Buffer.from(textOf(events)).equals(Buffer.from(text))).toBe(true)
    const done = events.find((e) => e.type === 'response.output_text.done')
    expect(done?.['text']).toBe(text)
  })

  it('ends finish_reason length as incomplete with reason max_output_tokens, and sends the limit upstream', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'cut short', finishReason: 'length' })
    const client = await connect()
    client.send({ type: 'session.update', session: { type: 'realtime', max_output_tokens: 5 } })
    await client.next('session.updated')
    const done = (await client.ask('long story')).at(-1)?.['response'] as Record<string, any>
    expect(done['status']).toBe('incomplete')
    expect(done['status_details']).toEqual({ type: 'incomplete', reason: 'max_output_tokens' })
    expect(done['output'][0]['status']).toBe('incomplete')
    expect(gw.sim.requests[0]?.body).toMatchObject({ max_completion_tokens: 5, stream: true, stream_options: { include_usage: true } })
  })
})

describe('a function-call reply', () => {
  it('streams the call as a function_call item, in_progress then completed, with argument deltas', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ toolCalls: [{ name: 'get_weather', arguments: '{"city":"Oslo","unit":"celsius"}' }] })
    const client = await connect()
    client.send({
      type: 'session.update',
      session: { type: 'realtime', tools: [{ type: 'function', name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } } } }], tool_choice: 'auto' }
    })
    await client.next('session.updated')
    const events = await client.ask('Weather in Oslo?')
    const types = events.map((e) => e.type).filter((t) => t !== 'response.function_call_arguments.delta')
    expect(types).toEqual([
      'conversation.item.added', 'conversation.item.done', 'response.created',
      'response.output_item.added', 'conversation.item.added',
      'response.function_call_arguments.done', 'response.output_item.done', 'conversation.item.done', 'response.done'
    ])
    const added = events.find((e) => e.type === 'response.output_item.added')?.['item'] as Record<string, unknown>
    expect(added).toMatchObject({ type: 'function_call', status: 'in_progress', name: 'get_weather', arguments: '' })
    const deltas = events.filter((e) => e.type === 'response.function_call_arguments.delta')
    expect(deltas.length).toBeGreaterThan(1)
    expect(deltas.map((d) => d['delta']).join('')).toBe('{"city":"Oslo","unit":"celsius"}')
    expect(deltas.every((d) => d['call_id'] === added['call_id'] && d['item_id'] === added['id'])).toBe(true)
    const argsDone = events.find((e) => e.type === 'response.function_call_arguments.done')
    expect(argsDone).toMatchObject({ name: 'get_weather', arguments: '{"city":"Oslo","unit":"celsius"}', call_id: added['call_id'] })
    const itemDone = events.find((e) => e.type === 'response.output_item.done')?.['item']
    expect(itemDone).toMatchObject({ type: 'function_call', status: 'completed' })

    // The tool definition reached the upstream in Chat Completions shape (beside the built-ins).
    expect(gw.sim.requests[0]?.body).toMatchObject({
      tools: expect.arrayContaining([expect.objectContaining({ type: 'function', function: expect.objectContaining({ name: 'get_weather', description: 'Weather by city' }) })]),
      tool_choice: 'auto'
    })

    // The client answers; the next turn carries the call and its output upstream.
    gw.sim.enqueue({ text: 'It is 12 °C in Oslo.' })
    client.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: added['call_id'], output: '{"temp_c":12}' } })
    client.send({ type: 'response.create' })
    const next = await client.until('response.done')
    expect(textOf(next)).toBe('It is 12 °C in Oslo.')
    const messages = gw.sim.requests[1]?.body.messages
    expect(messages?.slice(-2)).toEqual([
      { role: 'assistant', content: null, tool_calls: [{ id: added['call_id'], type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo","unit":"celsius"}' } }] },
      { role: 'tool', tool_call_id: added['call_id'], content: '{"temp_c":12}' }
    ])
  })

  it('gives parallel calls consecutive output indexes', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ toolCalls: [{ name: 'a', arguments: '{"x":1}' }, { name: 'b', arguments: '{"y":2}' }] })
    const client = await connect()
    const events = await client.ask('two calls')
    const done = events.filter((e) => e.type === 'response.output_item.done')
    expect(done.map((e) => [e['output_index'], (e['item'] as Record<string, unknown>)['name']])).toEqual([[0, 'a'], [1, 'b']])
  })

  it('rejects a function_call_output whose call_id is not in the conversation', async () => {
    gw = await startGateway()
    const client = await connect()
    client.send({ type: 'conversation.item.create', event_id: 'evt-orphan', item: { type: 'function_call_output', call_id: 'call_nope', output: 'x' } })
    const error = await client.next('error')
    expect(error['error']).toMatchObject({ code: 'tool_call_not_found', event_id: 'evt-orphan' })
  })
})

describe('a multi-turn dialog', () => {
  it('sends the whole history, with instructions first, on every turn', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'Nice to meet you, Ada.' }, { text: 'Your name is Ada.' })
    const client = await connect()
    client.send({ type: 'session.update', session: { type: 'realtime', instructions: 'You are terse.', temperature: 0.3 } })
    await client.next('session.updated')
    await client.ask('My name is Ada.')
    const second = await client.ask('What is my name?')
    expect(textOf(second)).toBe('Your name is Ada.')
    expect(gw.sim.requests[1]?.body).toMatchObject({
      temperature: 0.3,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'My name is Ada.' },
        { role: 'assistant', content: 'Nice to meet you, Ada.' },
        { role: 'user', content: 'What is my name?' }
      ]
    })
  })

  it('applies per-response overrides and runs conversation "none" out of band', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'in band' }, { text: 'summary' })
    const client = await connect()
    await client.ask('first')
    client.send({
      type: 'response.create',
      response: { conversation: 'none', instructions: 'Summarise.', metadata: { purpose: 'summary' }, input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'only this' }] }] }
    })
    const events = await client.until('response.done')
    expect(events.some((e) => e.type.startsWith('conversation.item'))).toBe(false)
    const response = events.at(-1)?.['response'] as Record<string, unknown>
    expect(response['metadata']).toEqual({ purpose: 'summary' })
    expect(response['conversation_id']).toBeUndefined()
    expect(gw.sim.requests[1]?.body.messages).toEqual([
      { role: 'system', content: 'Summarise.' },
      { role: 'user', content: 'only this' }
    ])
    // The out-of-band answer did not join the conversation.
    gw.sim.enqueue({ text: 'third' })
    await client.ask('again')
    expect(gw.sim.requests[2]?.body.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user'])
  })

  it('retrieves and deletes items, and leaves deleted items out of the next turn', async () => {
    gw = await startGateway()
    const client = await connect()
    client.send({ type: 'conversation.item.create', item: { id: 'item_keep', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'keep' }] } })
    client.send({ type: 'conversation.item.create', item: { id: 'item_drop', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'drop' }] } })
    client.send({ type: 'conversation.item.retrieve', item_id: 'item_drop' })
    const retrieved = await client.next('conversation.item.retrieved')
    expect(retrieved['item']).toMatchObject({ id: 'item_drop', status: 'completed' })
    client.send({ type: 'conversation.item.delete', item_id: 'item_drop' })
    expect(await client.next('conversation.item.deleted')).toMatchObject({ item_id: 'item_drop' })
    client.send({ type: 'response.create' })
    await client.next('response.done')
    expect(gw.sim.requests[0]?.body.messages).toEqual([{ role: 'user', content: 'keep' }])
  })

  it('inserts at the start with previous_item_id "root" and sends images as image_url parts', async () => {
    gw = await startGateway()
    const client = await connect()
    client.send({ type: 'conversation.item.create', item: { id: 'item_b', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'b' }] } })
    client.send({
      type: 'conversation.item.create',
      previous_item_id: 'root',
      item: { id: 'item_a', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'look:' }, { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' }] }
    })
    const added = await client.next('conversation.item.added')
    expect(added['previous_item_id']).toBeNull()
    client.send({ type: 'response.create' })
    await client.next('response.done')
    expect(gw.sim.requests[0]?.body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'look:' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' } }] },
      { role: 'user', content: 'b' }
    ])
  })
})
