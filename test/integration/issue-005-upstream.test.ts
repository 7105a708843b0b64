/**
 * Issue 5: upstream discipline — the first-token timeout, SSE keep-alive comments, upstreams
 * that refuse `stream_options`, usage on every response.done (estimated where the upstream sent
 * none), and `error` + `response.done` failed for every failure after response.created.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient, textOf, userMessage, type ServerEventLike } from '../helpers/ws-client.js'

let gw: TestGateway | undefined
let sim: Simulator | undefined
const clients: TestClient[] = []
async function connect (): Promise<TestClient> {
  const client = await TestClient.connect(gw?.url ?? '')
  clients.push(client)
  return client
}

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
  await sim?.close()
  gw = undefined
  sim = undefined
})

const responseOf = (events: ServerEventLike[]) => events.at(-1)?.['response'] as Record<string, any>

describe('timeouts', () => {
  it('ends a reply whose first token never comes within UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: retried, then failed naming the knob', async () => {
    gw = await startGateway({ env: { UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: '150', UPSTREAM_MAX_RETRIES: '1', UPSTREAM_MAX_RETRY_DELAY_MS: '1000' } })
    // The headers come at once, content only after 5 s.
    gw.sim.enqueue({ text: 'late', firstTokenDelayMs: 5000, keepAlive: true }, { text: 'late', firstTokenDelayMs: 5000, keepAlive: true })
    const client = await connect()
    const events = await client.ask('go')
    const error = events.at(-2)
    expect(error).toMatchObject({ type: 'error', error: { type: 'upstream_error', code: 'upstream_timeout' } })
    const done = responseOf(events)
    expect(done['status']).toBe('failed')
    expect(done['status_details']['error']['message']).toContain('UPSTREAM_FIRST_TOKEN_TIMEOUT_MS (150 ms)')
    // One retry (a loaded machine may time out an attempt before it even reaches the simulator).
    expect(gw.log.lines.filter((l) => l['msg'] === 'upstream retry')).toHaveLength(1)
    expect(gw.sim.requests.length).toBeGreaterThanOrEqual(1)
    for (const request of gw.sim.requests) expect(await request.ended).toBe('aborted')
  })

  it('does not apply the first-token timeout once tokens flow', async () => {
    gw = await startGateway({ env: { UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: '200' } })
    gw.sim.enqueue({ text: 'one two three four five six seven eight', tokenDelayMs: 60 })
    const client = await connect()
    const events = await client.ask('go')
    expect(responseOf(events)['status']).toBe('completed')
    expect(textOf(events)).toBe('one two three four five six seven eight')
  })
})

describe('upstreams that are not OpenAI', () => {
  it('ignores SSE keep-alive comments between chunks', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'comments are not tokens', keepAlive: true, chunking: 'bytes' })
    const client = await connect()
    const events = await client.ask('go')
    expect(textOf(events)).toBe('comments are not tokens')
    expect(responseOf(events)['status']).toBe('completed')
  })

  it('works with an upstream that refuses stream_options: learnt once, usage estimated and marked so', async () => {
    sim = await startSimulator({ rejectStreamOptions: true })
    gw = await startGateway({ sim })
    sim.enqueue({ text: 'counted by the gateway itself' }, { text: 'second' })
    const client = await connect()
    const first = responseOf(await client.ask('hello there'))
    expect(first['status']).toBe('completed')
    expect(first['usage']).toMatchObject({ estimated: true, output_tokens: 6 })
    expect(first['usage']['input_tokens']).toBeGreaterThan(0)
    expect(first['usage']['total_tokens']).toBe(first['usage']['input_tokens'] + first['usage']['output_tokens'])
    expect(responseOf(await client.ask('again'))['status']).toBe('completed')
    // One refusal, then every request without stream_options.
    expect(sim.requests.map((r) => r.body.stream_options === undefined)).toEqual([false, true, true])
    expect(gw.log.lines.filter((l) => l['msg'] === 'upstream refuses stream_options; usage will be estimated')).toHaveLength(1)
  })
})

describe('usage on every response.done', () => {
  it('estimates the usage of a cancelled reply from what was sent and generated', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'alpha beta gamma delta epsilon zeta eta theta', tokenDelayMs: 40 })
    const client = await connect()
    client.send(userMessage('go'))
    client.send({ type: 'response.create' })
    await client.next('response.output_text.delta')
    await client.next('response.output_text.delta')
    client.send({ type: 'response.cancel' })
    const events = await client.until('response.done')
    const done = responseOf(events)
    expect(done['status']).toBe('cancelled')
    expect(done['usage']).toMatchObject({ estimated: true })
    expect(done['usage']['output_tokens']).toBeGreaterThanOrEqual(2)
    expect(done['usage']['input_tokens']).toBeGreaterThan(0)
  })

  it('reports the upstream\'s own usage when it sent one, unmarked', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'exact', usage: { prompt_tokens: 12, completion_tokens: 3 } })
    const client = await connect()
    const done = responseOf(await client.ask('go'))
    expect(done['usage']).toMatchObject({ input_tokens: 12, output_tokens: 3, total_tokens: 15 })
    expect(done['usage']['estimated']).toBeUndefined()
  })
})

describe('failures after response.created', () => {
  it('end with an error event and then response.done failed, carrying the partial text and usage', async () => {
    gw = await startGateway()
    gw.sim.enqueue({ text: 'this stream breaks off in the middle of the reply', failure: { kind: 'cut', afterChunks: 4 } })
    const client = await connect()
    const events = await client.ask('go')
    const types = events.map((e) => e.type)
    expect(types.indexOf('response.created')).toBeLessThan(types.indexOf('error'))
    expect(types.at(-2)).toBe('error')
    expect(events.at(-2)?.['error']).toMatchObject({ code: 'upstream_stream_interrupted' })
    const done = responseOf(events)
    expect(done).toMatchObject({ status: 'failed', status_details: { error: { code: 'upstream_stream_interrupted' } } })
    expect(done['usage']).toMatchObject({ estimated: true })
    expect(textOf(events).length).toBeGreaterThan(0)
  })

  it('can be left to response.done alone with FAILED_RESPONSE_ERROR_EVENT=false (for SDK clients without an error listener)', async () => {
    gw = await startGateway({ env: { FAILED_RESPONSE_ERROR_EVENT: 'false', UPSTREAM_MAX_RETRIES: '0' } })
    gw.sim.enqueue({ failure: { kind: 'status', status: 503 } })
    const client = await connect()
    const events = await client.ask('go')
    expect(events.some((e) => e.type === 'error')).toBe(false)
    expect(responseOf(events)).toMatchObject({ status: 'failed', status_details: { error: { code: 'upstream_unavailable' } } })
  })
})
