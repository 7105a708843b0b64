/**
 * Issue 3: what goes wrong across instances — an instance killed mid-reply, an instance shut
 * down mid-reply — leaves a usable conversation, on real Redis and real processes.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { startChildGateway, type ChildGateway } from '../helpers/child-gateway.js'
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis.js'
import { TestClient, textOf, userMessage } from '../helpers/ws-client.js'

let redis: RedisServer | undefined
let cluster: RedisCluster | undefined
let sim: Simulator | undefined
const gateways: TestGateway[] = []
const children: ChildGateway[] = []
const clients: TestClient[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await Promise.allSettled([...children.splice(0).map(async (c) => c.kill()), ...gateways.splice(0).map(async (g) => g.close())])
  await sim?.close()
  sim = undefined
})
afterAll(async () => { await Promise.allSettled([redis?.stop(), cluster?.stop()]) })

async function connect (url: string): Promise<TestClient> {
  const client = await TestClient.connect(url)
  clients.push(client)
  return client
}

async function setup (store: 'redis' | 'cluster' = 'redis') {
  let location: Record<string, string>
  if (store === 'redis') {
    redis ??= await startRedis()
    location = { REDIS_URL: redis.url }
  } else {
    cluster ??= await startRedisCluster()
    location = { REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',') }
  }
  sim = await startSimulator()
  const shared = { ...location, REDIS_KEY_PREFIX: `tw-faults-${Date.now()}:`, LEASE_TTL_MS: '400' }
  const b = await startGateway({ sim, env: shared })
  gateways.push(b)
  return { sim, shared, b }
}

describe.each(['redis', 'cluster'] as const)('an instance killed mid-reply (SIGKILL, a real child process), on %s', (store) => {
  it('leaves the partial reply in the history, ends the response incomplete for attached clients, and a new turn works elsewhere', async () => {
    const { sim, shared, b } = await setup(store)
    const a = await startChildGateway({ ...shared, OPENAI_BASE_URL: sim.baseURL, OPENAI_API_KEY: 'sk-test-upstream-fake-0000' })
    children.push(a)
    sim.enqueue({ text: 'partial words that never finish because the instance dies', failure: { kind: 'stall', afterChunks: 4 } })

    const x = await connect(a.url)
    const y = await connect(`${b.url}&conversation_id=${x.conversationId}`)
    x.send(userMessage('tell me a long story'))
    x.send({ type: 'response.create' })
    await y.next('response.output_text.delta')
    const upstream = sim.requests[0]
    const seen = await y.until('response.output_text.delta')
    await a.kill()
    expect(await upstream?.ended).toBe('aborted')

    // B notices the silent response, takes the lapsed lease and ends it.
    const rest = await y.until('response.done')
    const done = rest.at(-1)?.['response'] as Record<string, any>
    expect(done['status']).toBe('incomplete')
    expect(done['output'][0]).toMatchObject({ type: 'message', status: 'incomplete' })
    const partial = textOf([...seen, ...rest])
    expect(partial.length).toBeGreaterThan(0)
    expect('partial words that never finish because the instance dies'.startsWith(done['output'][0]['content'][0]['text'])).toBe(true)

    sim.enqueue({ text: 'Picking up where we left off.' })
    const next = await y.ask('go on')
    expect(textOf(next)).toBe('Picking up where we left off.')
    const messages = sim.requests[1]?.body.messages
    expect(messages?.[1]).toMatchObject({ role: 'assistant' })
    expect(messages?.map((m) => m.role)).toEqual(['user', 'assistant', 'user'])
  })
})

describe('an instance shut down mid-reply', () => {
  it('closes its sockets with 1012 and the reply resumes on another instance, token-exact', async () => {
    const { sim, shared, b } = await setup()
    const a = await startGateway({ sim, env: shared })
    gateways.push(a)
    const text = 'the reply keeps streaming into the log while its instance drains'
    sim.enqueue({ text, tokenDelayMs: 15 })
    const x = await connect(a.url)
    x.send(userMessage('go'))
    x.send({ type: 'response.create' })
    await x.next('response.output_text.delta')
    const closing = a.app.close()
    const { code } = await x.closed
    expect(code).toBe(1012)
    const before = x.events.filter((e) => e.type === 'response.output_text.delta')
    const last = x.events.at(-1)
    if (last === undefined) throw new Error('no events')

    const again = await connect(`${b.url}&conversation_id=${x.conversationId}&resume_after=${last.event_id}`)
    const rest = await again.until('response.done')
    await closing
    expect(textOf(before) + textOf(rest)).toBe(text)
    expect((rest.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
  })
})

describe('Redis killed and restarted mid-reply', () => {
  it('keeps the reply streaming to its client, commits it once Redis is back, and recovers without a restart', async () => {
    const persistent = await startRedis({ persistent: true })
    try {
      sim = await startSimulator()
      const env = { REDIS_URL: persistent.url, REDIS_KEY_PREFIX: 'tw-outage:', LEASE_TTL_MS: '5000' }
      const a = await startGateway({ sim, env })
      const b = await startGateway({ sim, env })
      gateways.push(a, b)
      const text = 'every token of this reply must reach the client even while redis is gone'
      sim.enqueue({ text, tokenDelayMs: 40 })
      const x = await connect(a.url)
      const y = await connect(`${b.url}&conversation_id=${x.conversationId}`) // another instance
      x.send(userMessage('go'))
      x.send({ type: 'response.create' })
      await x.next('response.output_text.delta')

      await persistent.crash() // SIGKILL: acknowledged writes are on disk, nothing after them
      const during = await x.until('response.output_text.delta')
      expect(during.length).toBeGreaterThan(0)

      // A new attach while Redis is down gets a clear error, not silence.
      const refused = await TestClient.open(`${a.url}&conversation_id=${x.conversationId}`)
      clients.push(refused)
      const error = await refused.next('error')
      expect(error['error']).toMatchObject({ code: 'store_unavailable' })
      expect((await refused.closed).code).toBe(1011)

      await persistent.restart()
      const rest = await x.until('response.done')
      expect(textOf(x.events)).toBe(text)
      expect((rest.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')

      // The other instance's live feed came back by itself and caught up from the log:
      // every event once, in order, with cursor ids.
      const remote = await y.until('response.done')
      expect(textOf(y.events)).toBe(text)
      expect((remote.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
      const cursors = y.events.filter((e) => e.type.startsWith('response.')).map((e) => e.event_id)
      expect(new Set(cursors).size).toBe(cursors.length)
      expect(cursors.every((id) => id.startsWith('ev_'))).toBe(true)

      // Everything was committed once, in order: a fresh attach sees the whole dialog.

      const later = await connect(`${a.url}&conversation_id=${x.conversationId}`)

      const first = await later.next('conversation.item.done')
      const second = await later.next('conversation.item.done')
      expect([first['item'], second['item']]).toMatchObject([{ role: 'user' }, { role: 'assistant', status: 'completed', content: [{ text }] }])
      const log = await later.ask('and now?')
      expect((log.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
    } finally {
      await persistent.stop()
    }
  })
})
