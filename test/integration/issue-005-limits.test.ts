/**
 * Issue 5: limits. Per-key rate limits that hold exactly across three instances on one Redis
 * (requests and tokens per minute, reserve-then-settle, `rate_limits.updated`, the socket stays
 * open), concurrent sockets per key across instances, and the limits on what a client sends:
 * image size and a flood of events.
 */
import { once } from 'node:events'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { startInstances, type Instances } from '../helpers/instances.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { TestClient, userMessage, type ServerEventLike } from '../helpers/ws-client.js'

const KEY = 'sk-test-limited-not-real'
const OTHER = 'sk-test-other-not-real'
const browser = (key: string) => ['realtime', `openai-insecure-api-key.${key}`]

let redis: RedisServer | undefined
let instances: Instances | undefined
let gw: TestGateway | undefined
const clients: TestClient[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await instances?.close()
  await gw?.close()
  instances = undefined
  gw = undefined
})
afterAll(async () => { await redis?.stop() })

async function connect (url: string, key = KEY): Promise<TestClient> {
  const client = await TestClient.connect(url, { protocols: browser(key) })
  clients.push(client)
  return client
}

/** Sends a turn and resolves its outcome: the response.done, or the error that refused it. */
async function turn (client: TestClient, text: string): Promise<{ done?: ServerEventLike, error?: ServerEventLike, limits: ServerEventLike[] }> {
  client.send(userMessage(text))
  client.send({ type: 'response.create', event_id: `evt_${text}` })
  for (;;) {
    const event = await client.next()
    if (event.type === 'error' && (event['error'] as { event_id?: string }).event_id === `evt_${text}`) {
      return { error: event, limits: client.events.filter((e) => e.type === 'rate_limits.updated') }
    }
    if (event.type === 'response.done') return { done: event, limits: client.events.filter((e) => e.type === 'rate_limits.updated') }
  }
}

describe('rate limits across three instances on one Redis', () => {
  it('grant exactly RATE_LIMIT_REQUESTS_PER_MIN turns per key in all, refuse the rest with rate_limit_exceeded, and keep every socket open', async () => {
    redis ??= await startRedis()
    instances = await startInstances({
      count: 3,
      env: { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'tw-rl-exact:', GATEWAY_API_KEYS: `${KEY}:acme,${OTHER}:globex`, RATE_LIMIT_REQUESTS_PER_MIN: '5' }
    })
    // Six sockets per instance, each asking at once: 18 turns for a limit of 5.
    const sockets = await Promise.all(instances.gateways.flatMap((g) => Array.from({ length: 6 }, async () => await connect(g.url))))
    const outcomes = await Promise.all(sockets.map(async (socket, s) => await turn(socket, `s${s}`)))
    const granted = outcomes.filter((o) => o.done !== undefined)
    const limited = outcomes.filter((o) => o.error !== undefined)
    expect(granted).toHaveLength(5)
    expect(limited).toHaveLength(13)
    for (const { error } of limited) expect(error?.['error']).toMatchObject({ code: 'rate_limit_exceeded' })
    const message = (limited[0]?.error?.['error'] as { message: string }).message
    expect(message).toMatch(/RATE_LIMIT_REQUESTS_PER_MIN \(5\)/)
    expect(message).toMatch(/try again in \d+(\.\d)? s/)
    // Every client was told its key's limits, by the Realtime event, before its outcome.
    for (const socket of sockets) {
      const update = socket.events.find((e) => e.type === 'rate_limits.updated')
      expect(update?.['rate_limits']).toEqual([expect.objectContaining({ name: 'requests', limit: 5 })])
    }
    // The sockets stay open and another key is not affected.
    for (const socket of sockets) expect(socket.ws.readyState).toBe(WebSocket.OPEN)
    const other = await connect(instances.gateways[2]?.url ?? '', OTHER)
    expect((await turn(other, 'other')).done).toBeDefined()
  })

  it('reserve tokens per minute up front and settle them against the real usage', async () => {
    redis ??= await startRedis()
    instances = await startInstances({
      count: 2,
      env: { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'tw-rl-tokens:', GATEWAY_API_KEYS: `${KEY}:acme`, RATE_LIMIT_TOKENS_PER_MIN: '3000', RATE_LIMIT_OUTPUT_RESERVE_TOKENS: '1000' }
    })
    instances.sim.enqueue({ text: 'short reply', usage: { prompt_tokens: 40, completion_tokens: 10 } })
    const a = await connect(instances.gateways[0]?.url ?? '')
    const first = await turn(a, 'hello')
    expect(first.done).toBeDefined()
    const [reserved, settled] = first.limits.map((e) => (e['rate_limits'] as Array<{ name: string, remaining: number }>)[0])
    // Reserved: the input estimate plus 1000 for a reply of unbounded length.
    expect(reserved?.name).toBe('tokens')
    expect(reserved?.remaining).toBeLessThan(2000)
    if (settled === undefined) {
      await a.next('rate_limits.updated')
    }
    const after = (a.events.filter((e) => e.type === 'rate_limits.updated').at(-1)?.['rate_limits'] as Array<{ remaining: number }>)[0]
    // Settled: only the 50 tokens the upstream reported are spent (a little refill aside).
    expect(after?.remaining).toBeGreaterThanOrEqual(2950)

    // A reservation that cannot fit now is refused on the other instance too.
    const b = await connect(instances.gateways[1]?.url ?? '')
    b.send(userMessage('x'))
    b.send({ type: 'response.create', event_id: 'big', response: { max_output_tokens: 2990 } })
    const error = await b.next('error')
    expect(error['error']).toMatchObject({ code: 'rate_limit_exceeded', event_id: 'big' })
    expect((error['error'] as { message: string }).message).toMatch(/tokens: RATE_LIMIT_TOKENS_PER_MIN \(3000\)/)
  })

  it('refuses a request whose input alone is over the tokens-per-minute limit', async () => {
    gw = await startGateway({ env: { GATEWAY_API_KEYS: `${KEY}:acme`, RATE_LIMIT_TOKENS_PER_MIN: '100' } })
    const client = await connect(gw.url)
    client.send(userMessage('word '.repeat(400)))
    client.send({ type: 'response.create', event_id: 'huge' })
    expect((await client.next('error'))['error']).toMatchObject({ code: 'rate_limit_request_too_large', event_id: 'huge' })
    expect(gw.sim.requests).toHaveLength(0)
  })
})

describe('MAX_SOCKETS_PER_KEY', () => {
  it('bounds a key\'s sockets across instances with 429 at upgrade, and frees a slot when a socket closes', async () => {
    redis ??= await startRedis()
    instances = await startInstances({ count: 2, env: { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'tw-sockets:', GATEWAY_API_KEYS: `${KEY}:acme,${OTHER}:acme`, MAX_SOCKETS_PER_KEY: '2' } })
    const [a, b] = instances.gateways.map((g) => g.url)
    const first = await connect(a ?? '')
    await connect(b ?? '')
    const ws = new WebSocket(a ?? '', browser(KEY))
    const [, response] = await once(ws, 'unexpected-response') as [unknown, NodeJS.ReadableStream & { statusCode: number }]
    let body = ''
    for await (const chunk of response) body += String(chunk)
    expect(response.statusCode).toBe(429)
    expect(JSON.parse(body)).toMatchObject({ error: { code: 'too_many_sockets', message: expect.stringContaining('MAX_SOCKETS_PER_KEY (2)') } })
    await connect(b ?? '', OTHER) // per key, not per tenant
    await first.close()
    // The slot is released by a store call after the close: a connect may still race it, so
    // try again (each attempt is a full upgrade round trip), a bounded number of times.
    for (let attempt = 0; ; attempt++) {
      const retry = new WebSocket(b ?? '', browser(KEY))
      const [event] = await Promise.race([once(retry, 'open').then(() => ['open']), once(retry, 'unexpected-response').then(() => ['refused'])])
      if (event === 'open') {
        retry.close()
        break
      }
      expect(attempt).toBeLessThan(50)
    }
  })
})

describe('limits on what a client sends', () => {
  it('refuses an image over MAX_IMAGE_BYTES, naming the limit, and loses nothing else', async () => {
    gw = await startGateway({ env: { MAX_IMAGE_BYTES: '1024' } })
    const client = await TestClient.connect(gw.url)
    clients.push(client)
    const image = (bytes: number) => `data:image/png;base64,${Buffer.alloc(bytes, 7).toString('base64')}`
    client.send({ type: 'conversation.item.create', event_id: 'big', item: { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: image(2048) }] } })
    const error = await client.next('error')
    expect(error['error']).toMatchObject({ code: 'image_too_large', event_id: 'big', param: 'item.content[0].image_url', message: 'The image is 2048 bytes, over MAX_IMAGE_BYTES (1024)' })
    client.send({ type: 'conversation.item.create', event_id: 'small', item: { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: image(1000) }] } })
    expect((await client.next('conversation.item.done'))['item']).toMatchObject({ type: 'message' })
  })

  it('answers a flood beyond MAX_PENDING_EVENTS with too_many_pending_events, one answer per event, and keeps serving', async () => {
    gw = await startGateway({ env: { MAX_PENDING_EVENTS: '4' } })
    const client = await TestClient.connect(gw.url)
    clients.push(client)
    const count = 200
    // Sent in one synchronous burst: most frames arrive before the first is handled.
    for (let i = 0; i < count; i++) client.send({ type: 'conversation.item.retrieve', event_id: `e${i}`, item_id: 'item_missing' })
    const answers = new Map<string, string>()
    while (answers.size < count) {
      const error = (await client.next('error'))['error'] as { event_id: string, code: string }
      answers.set(error.event_id, error.code)
    }
    const codes = [...answers.values()]
    expect(codes.filter((c) => c === 'too_many_pending_events').length).toBeGreaterThan(0)
    expect(codes.filter((c) => c === 'item_not_found').length).toBeGreaterThanOrEqual(4)
    expect(codes.every((c) => c === 'too_many_pending_events' || c === 'item_not_found')).toBe(true)
    const done = await client.ask('still there?')
    expect((done.at(-1)?.['response'] as { status: string }).status).toBe('completed')
  })
})
