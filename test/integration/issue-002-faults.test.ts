/**
 * Issue 2: what goes wrong — cancel, disconnect, upstream failures before and after the
 * first token — always ends in response.done, stops the upstream, and keeps the socket usable.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient, textOf, userMessage } from '../helpers/ws-client.js'

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

describe('response.cancel', () => {
  it('aborts the upstream request at once and ends the response cancelled', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'one two three four five six', failure: { kind: 'stall', afterChunks: 3 } })
    const client = await connect()
    client.send(userMessage('go'))
    client.send({ type: 'response.create' })
    await client.next('response.output_text.delta')
    const upstream = gw.sim.requests[0]
    client.send({ type: 'response.cancel' })
    const events = await client.until('response.done')
    expect(await upstream?.ended).toBe('aborted')

    const done = events.at(-1)?.['response'] as Record<string, any>
    expect(done['status']).toBe('cancelled')
    expect(done['status_details']).toEqual({ type: 'cancelled', reason: 'client_cancelled' })
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['response.output_text.done', 'response.content_part.done', 'response.output_item.done']))
    expect(done['output'][0]).toMatchObject({ status: 'incomplete' })

    // The partial reply stays in the conversation, marked incomplete; the socket is usable.
    gw.sim.enqueue({ text: 'fine' })
    expect(textOf(await client.ask('again'))).toBe('fine')
    const history = gw.sim.requests[1]?.body.messages
    expect(history?.[1]).toMatchObject({ role: 'assistant' })
  })

  it('cancels before the first token too (the SDK iterator ends quietly on abort)', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ failure: { kind: 'stall', afterChunks: 0 } })
    const client = await connect()
    client.send(userMessage('go'))
    client.send({ type: 'response.create' })
    await client.next('response.created')
    const upstream = await gw.sim.nextRequest()
    client.send({ type: 'response.cancel' })
    const done = await client.next('response.done')
    expect((done['response'] as Record<string, unknown>)['status']).toBe('cancelled')
    expect(await upstream.ended).toBe('aborted')
  })

  it('answers a cancel with nothing active with response_cancel_not_active', async () => {
    gw = await startGateway()
    const client = await connect()
    client.send({ type: 'response.cancel', event_id: 'evt_c' })
    const error = await client.next('error')
    expect(error['error']).toMatchObject({ type: 'invalid_request_error', code: 'response_cancel_not_active', event_id: 'evt_c' })
  })
})

describe('one active response per conversation', () => {
  it('rejects a second response.create with the client event_id, and no created/done follows for it', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'slow reply', firstTokenDelayMs: 50 })
    const client = await connect()
    client.send(userMessage('go'))
    client.send({ type: 'response.create', event_id: 'evt_first' })
    client.send({ type: 'response.create', event_id: 'evt_second' })
    const events = await client.until('response.done')
    const errors = events.filter((e) => e.type === 'error')
    expect(errors).toHaveLength(1)
    expect(errors[0]?.['error']).toMatchObject({ code: 'conversation_already_has_active_response', event_id: 'evt_second' })
    expect(events.filter((e) => e.type === 'response.created')).toHaveLength(1)
    expect(gw.sim.requests).toHaveLength(1)
  })
})

describe('client disconnect', () => {
  it('stops the upstream request with ON_DISCONNECT=cancel', async () => {
    gw = await startGateway({ env: { ON_DISCONNECT: 'cancel' } })
    gw.sim.enqueue({ text: 'a b c d e f g', failure: { kind: 'stall', afterChunks: 2 } })
    const client = await connect()
    client.send(userMessage('go'))
    client.send({ type: 'response.create' })
    await client.next('response.output_text.delta')
    const upstream = gw.sim.requests[0]
    client.ws.terminate()
    expect(await upstream?.ended).toBe('aborted')
  })

  it('keeps generating by default, so a reconnecting client gets the whole reply', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'one two three four five six seven eight', tokenDelayMs: 5 })
    const client = await connect()
    const conversationId = client.conversationId
    client.send(userMessage('go'))
    client.send({ type: 'response.create' })
    const firstDelta = await client.next('response.output_text.delta')
    client.ws.terminate()
    expect(await gw.sim.requests[0]?.ended).toBe('finished')

    const back = await TestClient.connect(`${gw.url}&conversation_id=${conversationId}&resume_after=${firstDelta.event_id}`)
    clients.push(back)
    const rest = await back.until('response.done')
    expect(String(firstDelta['delta']) + textOf(rest)).toBe('one two three four five six seven eight')
    expect((rest.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
  })
})

describe('upstream failures', () => {
  it('retries a 429 after its retry-after, before the first token, and the reply completes', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ failure: { kind: 'status', status: 429, retryAfterSeconds: 0.05 } }, { text: 'after retry' })
    const client = await connect()
    const events = await client.ask('go')
    expect(textOf(events)).toBe('after retry')
    expect((events.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
    expect(gw.sim.requests).toHaveLength(2)
    expect(gw.log.lines.some((l) => l['msg'] === 'upstream retry')).toBe(true)
  })

  it('retries a stream that breaks before its first token', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'never', failure: { kind: 'cut', afterChunks: 1 } }, { text: 'second try' })
    const client = await connect()
    const events = await client.ask('go')
    expect(textOf(events)).toBe('second try')
    expect(events.filter((e) => e.type === 'response.created')).toHaveLength(1)
  })

  it('ends failed with the cause when retries run out: an error event, then response.done failed', async () => {
    gw = await startGateway({ env: { UPSTREAM_MAX_RETRIES: '1' } })
    gw.sim.enqueue({ failure: { kind: 'status', status: 500 } }, { failure: { kind: 'status', status: 500 } })
    const client = await connect()
    const events = await client.ask('go')
    const done = events.at(-1)?.['response'] as Record<string, any>
    expect(done['status']).toBe('failed')
    expect(done['status_details']).toMatchObject({ type: 'failed', error: { type: 'upstream_error', code: 'upstream_unavailable' } })
    const error = events.at(-2)
    expect(error).toMatchObject({ type: 'error', error: { type: 'upstream_error', code: 'upstream_unavailable' } })
    expect(gw.sim.requests).toHaveLength(2)
    // No upstream body or 5xx detail reaches the client.
    expect(JSON.stringify(done)).not.toContain('server_error')
  })

  it('does not retry a 400 from the upstream', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ failure: { kind: 'status', status: 400, message: 'bad model' } })
    const client = await connect()
    const done = (await client.ask('go')).at(-1)?.['response'] as Record<string, any>
    expect(done['status_details']['error']['code']).toBe('upstream_rejected')
    expect(gw.sim.requests).toHaveLength(1)
  })

  it('ends a stream cut after the first token failed, keeps the partial text, and the socket stays usable', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'alpha beta gamma delta epsilon', failure: { kind: 'cut', afterChunks: 3 } })
    const client = await connect()
    const events = await client.ask('go')
    const done = events.at(-1)?.['response'] as Record<string, any>
    expect(done['status']).toBe('failed')
    expect(done['status_details']['error']).toMatchObject({ code: 'upstream_stream_interrupted' })
    expect(done['output'][0]).toMatchObject({ status: 'incomplete' })
    expect(textOf(events).length).toBeGreaterThan(0)
    expect(gw.sim.requests).toHaveLength(1) // no retry after a token reached the client

    gw.sim.enqueue({ text: 'recovered' })
    expect(textOf(await client.ask('again'))).toBe('recovered')
  })

  it('ends an in-band upstream error event after tokens as failed', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'one two three four', failure: { kind: 'error-event', afterChunks: 3 } })
    const client = await connect()
    const done = (await client.ask('go')).at(-1)?.['response'] as Record<string, any>
    expect(done['status']).toBe('failed')
  })

  it('ends content_filter as incomplete', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'hmm', finishReason: 'content_filter' })
    const client = await connect()
    const done = (await client.ask('go')).at(-1)?.['response'] as Record<string, any>
    expect(done['status_details']).toEqual({ type: 'incomplete', reason: 'content_filter' })
  })
  it('ends a stream that goes silent mid-reply as failed with upstream_timeout, and stops it', async () => {
    gw = await startGateway({ env: { UPSTREAM_IDLE_TIMEOUT_MS: '200' } })
    gw.sim.enqueue({ text: 'one two three four', failure: { kind: 'stall', afterChunks: 3 } })
    const client = await connect()
    const events = await client.ask('go')
    const done = events.at(-1)?.['response'] as Record<string, any>
    expect(done['status']).toBe('failed')
    expect(done['status_details']['error']).toMatchObject({ code: 'upstream_timeout' })
    expect(done['status_details']['error']['message']).toContain('UPSTREAM_IDLE_TIMEOUT_MS')
    expect(await gw.sim.requests[0]?.ended).toBe('aborted')
  })

  it('retries an upstream that goes silent before its first token', async () => {
    gw = await startGateway({ env: { UPSTREAM_IDLE_TIMEOUT_MS: '200' } })
    gw.sim.enqueue({ failure: { kind: 'stall', afterChunks: 1 } }, { text: 'awake now' })
    const client = await connect()
    const events = await client.ask('go')
    expect(textOf(events)).toBe('awake now')
    expect(await gw.sim.requests[0]?.ended).toBe('aborted')
  })
})
