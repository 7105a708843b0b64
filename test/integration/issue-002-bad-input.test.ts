/**
 * Issue 2: bad input gets an `error` event with a stable code and the client's event_id, and
 * the socket stays open; frames over the limit close with 1009; real clients' extra session
 * fields are accepted.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient, textOf } from '../helpers/ws-client.js'

let gw: TestGateway
const clients: TestClient[] = []
async function connect (): Promise<TestClient> {
  const client = await TestClient.connect(gw.url)
  clients.push(client)
  return client
}

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
})

/** Sends `frame`, expects one error with `code`, then proves the socket still works. */
async function expectError (client: TestClient, frame: string | Record<string, unknown>, code: string, extra: Record<string, unknown> = {}) {
  if (typeof frame === 'string') client.sendRaw(frame)
  else client.send(frame)
  const error = await client.next('error')
  expect(error['error']).toMatchObject({ code, ...extra })
  expect(typeof (error['error'] as Record<string, unknown>)['message']).toBe('string')
  return error['error'] as Record<string, unknown>
}

describe('bad client input', () => {
  it('answers every class of bad event with a stable code and keeps the socket open', async () => {
    gw = await startGateway({ env: { MAX_ITEM_BYTES: '2048' } })
    const client = await connect()

    await expectError(client, 'not json {', 'invalid_json', { event_id: null })
    await expectError(client, '[1,2,3]', 'invalid_json')
    await expectError(client, { event_id: 'e1' }, 'invalid_value', { event_id: 'e1', param: 'type' })
    await expectError(client, { type: 'session.explode', event_id: 'e2' }, 'unknown_event_type', { event_id: 'e2' })
    await expectError(client, { type: 'session.update', event_id: 'e3', session: { instructions: 42 } }, 'invalid_value', { event_id: 'e3', param: 'session.instructions' })
    await expectError(client, { type: 'session.update', event_id: 'e4', session: { tool_choice: 'sometimes' } }, 'invalid_value', { param: 'session.tool_choice' })
    await expectError(client, { type: 'session.update', event_id: 'e5', session: { temprature: 1 } }, 'invalid_value', { event_id: 'e5' })
    await expectError(client, { type: 'conversation.item.create', event_id: 'e6', item: { type: 'message', role: 'user', content: 'hi' } }, 'invalid_value', { param: 'item.content' })
    await expectError(client, { type: 'conversation.item.create', event_id: 'e7', item: { type: 'message', role: 'user', content: [{ type: 'output_text', text: 'x' }] } }, 'invalid_value', { param: 'item.content[0].type' })
    await expectError(client, { type: 'conversation.item.create', event_id: 'e8', item: { type: 'reasoning' } }, 'invalid_value', { param: 'item.type' })
    await expectError(client, { type: 'conversation.item.create', event_id: 'e9', item: { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'file:///etc/passwd' }] } }, 'invalid_value', { param: 'item.content[0].image_url' })
    await expectError(client, { type: 'response.create', event_id: 'e10', response: { max_output_tokens: -1 } }, 'invalid_value', { param: 'response.max_output_tokens' })
    await expectError(client, { type: 'conversation.item.retrieve', event_id: 'e11', item_id: 'item_missing' }, 'item_not_found', { event_id: 'e11', param: 'item_id' })
    await expectError(client, { type: 'conversation.item.delete', event_id: 'e12', item_id: 'item_missing' }, 'item_not_found')
    await expectError(client, { type: 'conversation.item.create', event_id: 'e13', previous_item_id: 'item_missing', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } }, 'item_not_found', { param: 'previous_item_id' })

    // Audio events and audio parts: a clear "unsupported", not silence.
    for (const type of ['input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'output_audio_buffer.clear', 'conversation.item.truncate']) {
      await expectError(client, { type, event_id: `a-${type}`, audio: 'AAAA' }, 'audio_not_supported', { event_id: `a-${type}` })
    }
    await expectError(client, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_audio', audio: 'AAAA' }] } }, 'audio_not_supported')

    // An item over MAX_ITEM_BYTES.
    const big = 'x'.repeat(4096)
    const tooLarge = await expectError(client, { type: 'conversation.item.create', event_id: 'big', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: big }] } }, 'item_too_large', { event_id: 'big' })
    expect(tooLarge['message']).toContain('MAX_ITEM_BYTES')

    // Binary frames.
    client.sendRaw(Buffer.from([1, 2, 3]), true)
    expect((await client.next('error'))['error']).toMatchObject({ code: 'binary_not_supported' })

    // Duplicate item ids.
    const item = { type: 'conversation.item.create', item: { id: 'item_same', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } }
    client.send(item)
    await client.next('conversation.item.done')
    await expectError(client, { ...item, event_id: 'dup' }, 'item_already_exists', { event_id: 'dup' })

    // Nothing was lost: the conversation still answers, with the one good item.
    gw.sim.enqueue({ text: 'still here' })
    client.send({ type: 'response.create' })
    const events = await client.until('response.done')
    expect(textOf(events)).toBe('still here')
    expect(gw.sim.requests[0]?.body.messages).toEqual([{ role: 'user', content: 'x' }])
  })

  it('closes a frame over MAX_FRAME_BYTES with 1009', async () => {
    gw = await startGateway({ env: { MAX_FRAME_BYTES: '4096' } })
    const client = await connect()
    client.sendRaw(JSON.stringify({ type: 'session.update', session: { instructions: 'y'.repeat(8192) } }))
    const { code } = await client.closed
    expect(code).toBe(1009)
  })
})

describe('what real clients send', () => {
  it('accepts the agents-realtime session.update (audio block, tracing) and coerces audio output to text', async () => {
    gw = await startGateway()
    const client = await connect()
    client.send({ type: 'session.update', session: { type: 'realtime', tracing: 'auto' } })
    await client.next('session.updated')
    client.send({
      type: 'session.update',
      event_id: 'agents_1',
      session: {
        type: 'realtime',
        instructions: 'Be kind.',
        model: 'gpt-realtime',
        output_modalities: ['audio'],
        audio: {
          input: { format: { type: 'audio/pcm', rate: 24000 }, noise_reduction: null, transcription: { model: 'gpt-4o-mini-transcribe' }, turn_detection: { type: 'semantic_vad' } },
          output: { format: { type: 'audio/pcm', rate: 24000 }, speed: 1, voice: 'alloy' }
        },
        tools: [{ type: 'function', name: 'lookup', description: 'Look up', parameters: { type: 'object', properties: {} } }]
      }
    })
    const updated = await client.next('session.updated')
    const session = updated['session'] as Record<string, any>
    expect(session['output_modalities']).toEqual(['text'])
    expect(session['gateway_notices'][0]).toContain('output_modalities')
    expect(session['instructions']).toBe('Be kind.')
    expect(session['tracing']).toBe('auto')
    expect(session['audio']['output']['voice']).toBe('alloy')
    expect(session['tools']).toHaveLength(1)
    expect(client.events.some((e) => e.type === 'error')).toBe(false)

    // A realtime-only model name is served by DEFAULT_MODEL upstream.
    gw.sim.enqueue({ text: 'ok' })
    await client.ask('hi')
    expect(gw.sim.requests[0]?.body.model).toBe('gpt-4o')
  })
})
