/**
 * The rate-limit store contract, run against the memory store and a spawned redis-server (and
 * a 3-master cluster for the hash-tagged keys): all-or-nothing takes, exact under concurrency,
 * settle refunds and charges, socket slots bounded and freed.
 */
import { randomUUID } from 'node:crypto'
import { Cluster, Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { createMemoryRateLimits, type RateLimitStore } from '../../src/limits/rate-limits.js'
import { createRedisRateLimits } from '../../src/limits/redis-rate-limits.js'
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis.js'

let single: RedisServer | undefined
let cluster: RedisCluster | undefined
const clients: Array<Redis | Cluster> = []

afterAll(async () => {
  await Promise.allSettled(clients.map(async (c) => await c.quit()))
  await Promise.allSettled([single?.stop(), cluster?.stop()])
})

const cases: Array<[string, () => Promise<RateLimitStore>]> = [
  ['memory', async () => createMemoryRateLimits()],
  ['redis', async () => {
    single ??= await startRedis()
    const client = new Redis(single.url)
    clients.push(client)
    return createRedisRateLimits({ client, keyPrefix: 'tw-rl-test:', run: async (call) => await call() })
  }],
  ['redis cluster', async () => {
    cluster ??= await startRedisCluster()
    const client = new Cluster(cluster.nodes.map(({ host, port }) => ({ host, port })))
    clients.push(client)
    return createRedisRateLimits({ client, keyPrefix: 'tw-rl-test:', run: async (call) => await call() })
  }]
]

describe.each(cases)('rate limits on %s', (_name, make) => {
  const key = () => `key_${randomUUID().slice(0, 12)}`

  it('grants exactly the limit to concurrent takes, all or nothing across both buckets', async () => {
    const store = await make()
    const id = key()
    const limits = { requestsPerMin: 5, tokensPerMin: 1000 }
    const results = await Promise.all(Array.from({ length: 12 }, async () => await store.take(id, limits, { requests: 1, tokens: 100 })))
    expect(results.filter((r) => r.granted)).toHaveLength(5)
    const refused = results.find((r) => !r.granted)
    expect(refused).toMatchObject({ granted: false, exceeded: 'requests' })
    if (refused?.granted === false) expect(refused.retryAfterMs).toBeGreaterThan(0)
    // The refused takes took nothing: 5 × 100 tokens are gone, not 12 × 100.
    const status = await store.settle(id, limits, 0)
    expect(status[0]?.remaining).toBeGreaterThanOrEqual(500)
    expect(status[0]?.remaining).toBeLessThan(510)
  })

  it('refuses on tokens when a reservation does not fit, naming the bucket, and reports both limits', async () => {
    const store = await make()
    const id = key()
    const limits = { requestsPerMin: 100, tokensPerMin: 1000 }
    expect(await store.take(id, limits, { requests: 1, tokens: 900 })).toMatchObject({ granted: true })
    const refused = await store.take(id, limits, { requests: 1, tokens: 200 })
    expect(refused).toMatchObject({ granted: false, exceeded: 'tokens' })
    expect(refused.status.map((s) => s.name)).toEqual(['requests', 'tokens'])
    expect(refused.status[1]).toMatchObject({ limit: 1000 })
    expect(refused.status[1]?.remaining).toBeLessThan(200)
  })

  it('settles a reservation: unused tokens come back, overruns are charged', async () => {
    const store = await make()
    const id = key()
    const limits = { requestsPerMin: 0, tokensPerMin: 1000 }
    const taken = await store.take(id, limits, { requests: 1, tokens: 800 })
    expect(taken.status).toEqual([expect.objectContaining({ name: 'tokens', limit: 1000 })])
    expect(taken.status[0]?.remaining).toBeLessThan(205)
    const refunded = await store.settle(id, limits, 700) // used 100 of 800
    expect(refunded[0]?.remaining).toBeGreaterThanOrEqual(900)
    const charged = await store.settle(id, limits, -600) // a reply that ran 600 over
    expect(charged[0]?.remaining).toBeLessThan(310)
    expect(await store.settle(id, limits, 1_000_000)).toEqual([expect.objectContaining({ remaining: 1000 })])
  })

  it('bounds socket slots per key and frees them on release', async () => {
    const store = await make()
    const id = key()
    const held = await Promise.all(['a', 'b', 'c', 'd'].map(async (s) => await store.holdSocket(id, s, 2, 30_000)))
    expect(held.filter(Boolean)).toHaveLength(2)
    const holder = ['a', 'b', 'c', 'd'][held.indexOf(true)] ?? ''
    expect(await store.holdSocket(id, holder, 2, 30_000)).toBe(true) // a refresh is not a new slot
    await store.releaseSocket(id, holder)
    expect(await store.holdSocket(id, 'e', 2, 30_000)).toBe(true)
    expect(await store.holdSocket(id, 'f', 2, 30_000)).toBe(false)
  })
})

describe('memory rate limits over time', () => {
  it('refill at limit per minute, never above the limit', async () => {
    let now = 0
    const store = createMemoryRateLimits(() => now)
    const limits = { requestsPerMin: 60, tokensPerMin: 0 }
    for (let i = 0; i < 60; i++) expect((await store.take('k', limits, { requests: 1, tokens: 0 })).granted).toBe(true)
    const refused = await store.take('k', limits, { requests: 1, tokens: 0 })
    expect(refused).toMatchObject({ granted: false, retryAfterMs: 1000 })
    now += 1000
    expect((await store.take('k', limits, { requests: 1, tokens: 0 })).granted).toBe(true)
    now += 3_600_000
    const full = await store.take('k', limits, { requests: 1, tokens: 0 })
    expect(full.status).toEqual([{ name: 'requests', limit: 60, remaining: 59, resetSeconds: 1 }])
  })

  it('expires socket slots that were not refreshed (a dead instance frees its sockets)', async () => {
    let now = 0
    const store = createMemoryRateLimits(() => now)
    expect(await store.holdSocket('k', 'a', 1, 1000)).toBe(true)
    expect(await store.holdSocket('k', 'b', 1, 1000)).toBe(false)
    now += 1001
    expect(await store.holdSocket('k', 'b', 1, 1000)).toBe(true)
  })
})
