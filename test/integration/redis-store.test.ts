import { randomUUID } from 'node:crypto'
import { Cluster, Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Item } from '../../src/protocol/events.js'
import type { Backend, LiveMessage } from '../../src/store/conversation-store.js'
import { conversationKeys, createRedisBackend } from '../../src/store/redis-store.js'
import { contractLimits, conversationStoreContract } from '../contract/conversation-store.contract.js'
import { createLogSink } from '../helpers/log-sink.js'
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../helpers/redis.js'

/** One key prefix per test run, so runs never see each other's keys. */
const keyPrefix = `tw-test:${randomUUID()}:`
const WAIT = { timeout: 10_000, interval: 20 }

function item (id: string, text: string): Item {
  return { id, object: 'realtime.item', status: 'completed', type: 'message', role: 'user', content: [{ type: 'input_text', text }] }
}

const delta = (n: number) => JSON.stringify({ type: 'response.output_text.delta', delta: `d${n}` })

describe('RedisStore on a single node', () => {
  let server: RedisServer
  beforeAll(async () => { server = await startRedis() })
  afterAll(async () => { await server.stop() })

  conversationStoreContract('redis', async () => {
    const backend = createRedisBackend({ url: server.url, keyPrefix, ...contractLimits, log: createLogSink('warn').logger })
    return { backend, teardown: () => backend.close() }
  })
})

describe('RedisStore idle expiry', () => {
  let server: RedisServer
  beforeAll(async () => { server = await startRedis() })
  afterAll(async () => { await server.stop() })

  it('expires an idle conversation after CONVERSATION_TTL_MS, every key of it; reads and writes keep one alive', async () => {
    const backend = createRedisBackend({ url: server.url, keyPrefix, ttlMs: 400, maxLogEvents: 10, maxItems: 10, log: createLogSink('warn').logger })
    const admin = new Redis(server.url)
    try {
      await backend.conversations.create('conv_idle', 'tenant', 'e1')
      await backend.conversations.create('conv_busy', 'tenant', 'e2')
      await backend.conversations.append('conv_idle', { events: [delta(1)], ops: [{ op: 'insert', item: item('item_1', 'hi') }] })
      const keys = Object.values(conversationKeys(keyPrefix, 'conv_idle')).filter((key) => !key.endsWith(':live') && !key.endsWith(':lease') && !key.endsWith(':active_items'))
      for (const key of keys) {
        const ttl = await admin.pttl(key)
        expect(ttl, key).toBeGreaterThan(0)
        expect(ttl, key).toBeLessThanOrEqual(400)
      }
      // conv_busy is read and written while conv_idle is left alone.
      await vi.waitFor(async () => {
        await backend.conversations.snapshot('conv_busy', 'tenant')
        expect(await admin.exists(...keys)).toBe(0) // looked at without touching it
      }, { timeout: 5_000, interval: 100 })
      expect(await backend.conversations.snapshot('conv_idle', 'tenant')).toBeUndefined()
      expect(await backend.conversations.snapshot('conv_busy', 'tenant')).toBeDefined()
    } finally {
      await admin.quit()
      await backend.close()
    }
  })
})

describe('RedisStore on a 3-master cluster', () => {
  let cluster: RedisCluster
  beforeAll(async () => { cluster = await startRedisCluster() }, 60_000)
  afterAll(async () => { await cluster.stop() })

  conversationStoreContract('redis-cluster', async () => {
    const backend = createRedisBackend({ clusterNodes: cluster.nodes, keyPrefix, ...contractLimits, log: createLogSink('warn').logger })
    return { backend, teardown: () => backend.close() }
  })

  it('keeps every key and the live channel of a conversation in one slot, spread over the nodes', async () => {
    const admin = new Cluster(cluster.nodes)
    try {
      const slotsUsed = new Set<number>()
      for (let i = 0; i < 12; i++) {
        const keys = Object.values(conversationKeys(keyPrefix, `conv_${randomUUID().replaceAll('-', '')}`))
        expect(keys).toHaveLength(7)
        const slots = await Promise.all(keys.map(async (key) => Number(await admin.call('CLUSTER', 'KEYSLOT', key))))
        expect(new Set(slots).size).toBe(1)
        slotsUsed.add(slots[0] ?? -1)
      }
      expect(slotsUsed.size).toBeGreaterThan(1)
    } finally {
      await admin.quit()
    }
  })

  it('delivers live events of conversations owned by every node to one subscriber connection', async () => {
    const backend = createRedisBackend({ clusterNodes: cluster.nodes, keyPrefix, ...contractLimits, log: createLogSink('warn').logger })
    const admin = new Cluster(cluster.nodes)
    try {
      const ids = Array.from({ length: 12 }, () => `conv_${randomUUID().replaceAll('-', '')}`)
      // The conversations really live on different masters.
      const owners = new Set(await Promise.all(ids.map(async (id) => {
        const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', conversationKeys(keyPrefix, id).meta))
        return admin.slots[slot]?.[0]
      })))
      expect(owners.size).toBeGreaterThan(1)
      const received = new Map<string, LiveMessage[]>()
      const unsubscribes = await Promise.all(ids.map(async (id) => {
        await backend.conversations.create(id, 'tenant', 'e1')
        received.set(id, [])
        return await backend.live.subscribe(id, (message) => received.get(id)?.push(message))
      }))
      const appended = await Promise.all(ids.map((id) => backend.conversations.append(id, { events: [delta(1), delta(2)] })))
      await vi.waitFor(() => {
        for (const id of ids) expect(received.get(id)).toHaveLength(1)
      }, WAIT)
      ids.forEach((id, i) => {
        expect(received.get(id)).toEqual([{ kind: 'events', firstSeq: 1, events: appended[i]?.events }])
      })
      await Promise.all(unsubscribes.map((unsubscribe) => unsubscribe()))
    } finally {
      await admin.quit()
      await backend.close()
    }
  })
})

describe('RedisStore across a Redis restart', () => {
  let server: RedisServer
  let backend: Backend
  const sink = createLogSink('debug')
  const secret = `prompt text ${randomUUID()}`

  beforeAll(async () => {
    server = await startRedis()
    backend = createRedisBackend({ url: server.url, keyPrefix, ...contractLimits, log: sink.logger })
  })
  afterAll(async () => {
    await backend.close()
    await server.stop()
  })

  it('fails fast with GW_ERR_STORE_UNAVAILABLE while Redis is down, resyncs subscribers and works again after it is back', async () => {
    const id = `conv_${randomUUID().replaceAll('-', '')}`
    await backend.conversations.create(id, 'tenant', 'e1')
    await backend.conversations.append(id, { events: [delta(0)], ops: [{ op: 'insert', item: item('item_a', secret) }] })
    const messages: LiveMessage[] = []
    const unsubscribe = await backend.live.subscribe(id, (message) => messages.push(message))
    expect(await backend.ready()).toBe(true)

    await server.stop()
    const started = Date.now()
    const failure = await backend.conversations.append(id, { events: [delta(1)] }).then(() => undefined, (err: unknown) => err)
    const elapsed = Date.now() - started
    expect(failure).toMatchObject({ code: 'GW_ERR_STORE_UNAVAILABLE', statusCode: 503, wire: 'store_unavailable' })
    expect(elapsed).toBeLessThan(5_000)
    expect(await backend.ready()).toBe(false)
    expect(await backend.conversations.snapshot(id, 'tenant').then(() => 'resolved', (err: { code?: string }) => err.code)).toBe('GW_ERR_STORE_UNAVAILABLE')

    await server.restart()
    // The subscriber tells its listeners to re-read the log once it is subscribed again.
    await vi.waitFor(() => { expect(messages).toContainEqual({ kind: 'resync' }) }, WAIT)
    await vi.waitFor(async () => { expect(await backend.ready()).toBe(true) }, WAIT)

    // Nothing was persisted: the same backend object recreates the conversation and streams.
    expect(await backend.conversations.snapshot(id, 'tenant')).toBeUndefined()
    await backend.conversations.create(id, 'tenant', 'e2')
    const appended = await backend.conversations.append(id, { events: [delta(2)], ops: [{ op: 'insert', item: item('item_b', secret) }] })
    await vi.waitFor(() => { expect(messages.at(-1)).toEqual({ kind: 'events', firstSeq: 1, events: appended.events }) }, WAIT)
    expect(messages.filter((message) => message.kind === 'events')).toHaveLength(1)
    await unsubscribe()

    // The outage was logged, without any item text.
    expect(sink.text()).toContain('redis connection error')
    expect(sink.text()).not.toContain(secret)
  })
})
