/**
 * Issue 7: usage per tenant per day, on the memory store and on Redis: every response's usage is
 * in its response.done, summed per tenant per UTC day, read back from GET /v1/usage with the
 * tenant's own gateway key — never another tenant's, never without a key. On Redis the totals
 * expire, two instances record each reply once, and a write that fails is logged and counted.
 */
import { Redis } from 'ioredis'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { createMemoryUsage } from '../../src/store/usage-memory.js'
import { USAGE_RETENTION_DAYS, usageDay } from '../../src/store/usage-store.js'
import { stopBackends, stores } from '../helpers/backends.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { startInstances, type Instances } from '../helpers/instances.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { TestClient, userMessage, type ServerEventLike } from '../helpers/ws-client.js'

const KEYS = 'sk-test-acme-not-real:acme,sk-test-globex-not-real:globex'
const ACME = 'sk-test-acme-not-real'
const GLOBEX = 'sk-test-globex-not-real'

let gw: TestGateway | undefined
let instances: Instances | undefined
let redis: RedisServer | undefined
const clients: TestClient[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await Promise.allSettled([gw?.close(), instances?.close()])
  gw = undefined
  instances = undefined
})
afterAll(async () => { await Promise.allSettled([stopBackends(), redis?.stop()]) })

interface Usage { responses: number, input_tokens: number, output_tokens: number, total_tokens: number, cached_input_tokens: number, estimated_responses: number }
interface DoneUsage { input_tokens: number, output_tokens: number, estimated?: boolean }

async function connect (url: string, key: string): Promise<TestClient> {
  const client = await TestClient.connect(url, { headers: { authorization: `Bearer ${key}` } })
  clients.push(client)
  return client
}

function usageOf (events: ServerEventLike[]): DoneUsage {
  const done = events.at(-1)
  expect(done?.type).toBe('response.done')
  const usage = (done?.['response'] as { usage?: DoneUsage } | undefined)?.usage
  if (usage === undefined) throw new Error('response.done carries no usage')
  return usage
}

async function usageFor (origin: string, key: string | undefined, query = ''): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(`${origin.replace(/^ws/, 'http')}/v1/usage${query}`, key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

/** Reads a tenant's usage until it counts `responses` (writes complete just after response.done). */
async function usageOnce (origin: string, key: string, responses: number): Promise<Usage> {
  const deadline = Date.now() + 5_000
  for (;;) {
    const { status, body } = await usageFor(origin, key)
    expect(status).toBe(200)
    if (body['responses'] === responses) return body as unknown as Usage
    if (Date.now() > deadline) throw new Error(`usage still ${JSON.stringify(body)}, expected ${responses} responses`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe.each(stores())('usage on $name', ({ env }) => {
  it('sums each tenant\'s responses per day; each tenant reads only its own', async () => {
    gw = await startGateway({ env: { ...await env(), GATEWAY_API_KEYS: KEYS } })
    const acme = await connect(gw.url, ACME)
    const globex = await connect(gw.url, GLOBEX)
    const a1 = usageOf(await acme.ask('First question from acme'))
    const a2 = usageOf(await acme.ask('A second, longer question from acme about the weather'))
    gw.sim.enqueue({ text: 'No usage from this upstream', usage: false })
    const g1 = usageOf(await globex.ask('Hello from globex'))
    expect(g1.estimated).toBe(true) // the upstream sent none: the gateway's own count

    const mine = await usageOnce(gw.origin, ACME, 2)
    expect(mine).toMatchObject({
      object: 'usage.day',
      tenant: 'acme',
      date: usageDay(new Date()),
      input_tokens: a1.input_tokens + a2.input_tokens,
      output_tokens: a1.output_tokens + a2.output_tokens,
      total_tokens: a1.input_tokens + a2.input_tokens + a1.output_tokens + a2.output_tokens,
      estimated_responses: 0
    })
    const theirs = await usageOnce(gw.origin, GLOBEX, 1)
    expect(theirs).toMatchObject({ tenant: 'globex', input_tokens: g1.input_tokens, output_tokens: g1.output_tokens, estimated_responses: 1 })
    // Another day: nothing (yet).
    const before = await usageFor(gw.origin, ACME, '?date=2001-02-03')
    expect(before).toEqual({ status: 200, body: expect.objectContaining({ date: '2001-02-03', responses: 0, input_tokens: 0, output_tokens: 0 }) })
  })

  it('refuses a missing or unknown key (401), an ephemeral key (403) and a malformed date (400)', async () => {
    gw = await startGateway({ env: { ...await env(), GATEWAY_API_KEYS: KEYS } })
    const missing = await usageFor(gw.origin, undefined)
    expect(missing).toEqual({ status: 401, body: { error: expect.objectContaining({ code: 'invalid_api_key' }) } })
    const wrong = await usageFor(gw.origin, 'sk-test-nobody-not-real')
    expect(wrong.status).toBe(401)
    const minted = await fetch(`${gw.origin.replace(/^ws/, 'http')}/v1/realtime/client_secrets`, { method: 'POST', headers: { authorization: `Bearer ${ACME}`, 'content-type': 'application/json' }, body: '{}' })
    const { value: ephemeral } = await minted.json() as { value: string }
    expect((await usageFor(gw.origin, ephemeral)).body).toEqual({ error: expect.objectContaining({ code: 'ephemeral_key_not_allowed' }) })
    const bad = await usageFor(gw.origin, ACME, '?date=yesterday')
    expect(bad).toEqual({ status: 400, body: { error: expect.objectContaining({ code: 'invalid_request', param: 'date' }) } })
    expect((await usageFor(gw.origin, ACME, '?date=2024-13-45')).status).toBe(400)
  })
})

describe('usage on Redis', () => {
  it('keeps a day for 35 days, and two instances on one Redis record each reply once', async () => {
    redis ??= await startRedis()
    const prefix = `tw-usage-${Date.now().toString(36)}:`
    instances = await startInstances({ count: 2, env: { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, GATEWAY_API_KEYS: KEYS } })
    const [a, b] = instances.gateways
    if (a === undefined || b === undefined) throw new Error('two instances expected')
    const onA = await connect(a.url, ACME)
    const onB = await connect(b.url, ACME)
    const u1 = usageOf(await onA.ask('Question on instance A'))
    const u2 = usageOf(await onB.ask('Question on instance B'))
    const total = await usageOnce(b.origin, ACME, 2)
    expect(total.output_tokens).toBe(u1.output_tokens + u2.output_tokens)

    const client = new Redis(redis.url)
    try {
      const key = `${prefix}usage:${usageDay(new Date())}:acme`
      expect(await client.hget(key, 'responses')).toBe('2')
      const ttl = await client.pttl(key)
      expect(ttl).toBeGreaterThan((USAGE_RETENTION_DAYS - 1) * 86_400_000)
      expect(ttl).toBeLessThanOrEqual(USAGE_RETENTION_DAYS * 86_400_000)
    } finally {
      client.disconnect()
    }
  })

  it('logs and counts a usage write that fails, with the usage it carried', async () => {
    const own = await startRedis()
    try {
      gw = await startGateway({ env: { REDIS_URL: own.url, GATEWAY_API_KEYS: KEYS } })
      const client = await connect(gw.url, ACME)
      gw.sim.enqueue({ text: 'A slow reply that outlives its Redis', firstTokenDelayMs: 10, tokenDelayMs: 60 })
      client.send(userMessage('Keep talking'))
      client.send({ type: 'response.create' })
      await client.next('response.output_text.delta')
      await own.crash()
      // The reply still reaches this socket (degraded mode), and its usage cannot be stored.
      usageOf(await client.until('response.done'))
      const deadline = Date.now() + 10_000
      while (!gw.log.lines.some((l) => l['msg'] === 'usage record failed')) {
        if (Date.now() > deadline) throw new Error('no "usage record failed" log line')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      const line = gw.log.lines.find((l) => l['msg'] === 'usage record failed')
      expect(line).toMatchObject({ tenant: 'acme', usage: { responses: 1 } })
      const metrics = await gw.app.inject({ method: 'GET', url: '/metrics' })
      expect(metrics.body).toMatch(/^tokenwire_redis_errors_total\{operation="usage"\} 1$/m)
      // Reading usage while Redis is down: 503, not a made-up zero.
      expect(await usageFor(gw.origin, ACME)).toEqual({ status: 503, body: { error: expect.objectContaining({ code: 'store_unavailable' }) } })
      await own.restart() // so the gateway can close (its log writes finish)
    } finally {
      await gw?.close()
      gw = undefined
      await own.stop()
    }
  })
})

describe('the memory usage store', () => {
  it('adds atomically per tenant and day, and drops days past the retention', async () => {
    let now = Date.parse('2030-01-01T12:00:00Z')
    const store = createMemoryUsage(() => now)
    const one = { responses: 1, inputTokens: 10, outputTokens: 5, cachedInputTokens: 2, estimatedResponses: 0 }
    await Promise.all([store.add('acme', '2030-01-01', one), store.add('acme', '2030-01-01', one), store.add('globex', '2030-01-01', one)])
    expect(await store.read('acme', '2030-01-01')).toEqual({ responses: 2, inputTokens: 20, outputTokens: 10, cachedInputTokens: 4, estimatedResponses: 0 })
    now += (USAGE_RETENTION_DAYS + 1) * 86_400_000
    await store.add('acme', usageDay(new Date(now)), one)
    expect((await store.read('acme', '2030-01-01')).responses).toBe(0)
    expect((await store.read('acme', usageDay(new Date(now)))).responses).toBe(1)
  })
})
