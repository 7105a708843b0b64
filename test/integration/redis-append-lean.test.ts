/**
 * RedisStore sends a streamed token (events, at most a replace, no active change) to a lean
 * append script and everything else to the full one. These tests hold both to MemoryStore's
 * results byte for byte, across sequence numbers that carry into a new digit, and check the lean
 * script's own fence and TTL paths.
 */
import { randomUUID } from 'node:crypto'
import { describe, expect, it, vi } from 'vitest'
import type { Item } from '../../src/protocol/events.js'
import type { AppendRequest, AppendResult, Backend, LiveMessage } from '../../src/store/conversation-store.js'
import { createMemoryBackend } from '../../src/store/memory-store.js'
import { conversationKeys, createRedisBackend } from '../../src/store/redis-store.js'
import { createLogSink } from '../helpers/log-sink.js'
import { assistantItem, codeOf, userItem, useRedis } from '../helpers/store-fixtures.js'

const WAIT = { timeout: 10_000, interval: 20 }
const limits = { ttlMs: 60_000, maxLogEvents: 50, maxItems: 100 }

const delta = (n: number) => JSON.stringify({ type: 'response.output_text.delta', item_id: 'item_a', delta: ` t${n}` })
const added = (item: Item) => JSON.stringify({ type: 'conversation.item.added', previous_item_id: '__previous_item_id__', item })

describe('RedisStore append scripts', () => {
  const running = useRedis()

  const redisBackend = (prefix: string): Backend => createRedisBackend({ url: running.server.url, keyPrefix: prefix, ...limits, log: createLogSink('warn').logger })

  it('stamps, logs, publishes and answers retries like MemoryStore, past seq 9, 99 and 999', async () => {
    const redis = redisBackend(`tw-lean:${randomUUID()}:`)
    const memory = createMemoryBackend({ maxConversations: 10, ...limits })
    const id = 'conv_same'
    const live: LiveMessage[] = []
    try {
      const fences: number[] = []
      for (const backend of [redis, memory]) {
        await backend.conversations.create(id, 'tenant', 'e1')
        const grant = await backend.leases.acquire(id, 'instance-1', 'resp_1', 60_000)
        if (!grant.granted) throw new Error('not granted')
        fences.push(grant.fence)
      }
      const unsubscribe = await redis.live.subscribe(id, (message) => { live.push(message) })
      const both = async (request: (fence: number) => AppendRequest): Promise<AppendResult> => {
        const fromRedis = await redis.conversations.append(id, request(fences[0] ?? 0))
        const fromMemory = await memory.conversations.append(id, request(fences[1] ?? 0))
        expect(fromRedis).toEqual(fromMemory)
        return fromRedis
      }

      const results: AppendResult[] = []
      results.push(await both((fence) => ({ id: randomUUID(), fence, active: { responseId: 'resp_1', state: 'start' }, events: [added(assistantItem('item_a', ''))], ops: [{ op: 'insert', item: assistantItem('item_a', '') }] })))
      let text = ''
      let n = 0
      for (let i = 0; n < 1_010; i++) {
        // 0 to 4 events; some replace the streamed item, some insert (the full script), some
        // carry no fence; every 9th is sent twice with the same id.
        const events = Array.from({ length: i % 5 }, () => delta(n++))
        text += ` t${i}`
        const ops: AppendRequest['ops'] = i % 17 === 16
          ? [{ op: 'insert', item: userItem(`item_u${i}`) }]
          : i % 3 === 0 ? [{ op: 'replace', item: assistantItem('item_a', text) }] : []
        const appendId = randomUUID()
        const request = (fence: number): AppendRequest => ({
          id: appendId,
          ...(i % 13 === 12 ? {} : { fence }),
          events: ops[0]?.op === 'insert' ? [...events, added(ops[0].item)] : events,
          ops
        })
        const result = await both(request)
        results.push(result)
        if (i % 9 === 8) expect(await both(request)).toEqual(result)
      }
      const done = delta(n++)
      results.push(await both((fence) => ({ id: randomUUID(), fence, active: { responseId: 'resp_1', state: 'end' }, events: [done] })))

      const last = results.at(-1)
      expect(last?.firstSeq).toBeGreaterThan(1_000)
      const log = await redis.conversations.readLog(id, 0)
      expect(log).toEqual(await memory.conversations.readLog(id, 0))
      expect(log).toHaveLength(limits.maxLogEvents)
      expect(log.map((entry) => JSON.parse(entry.event).event_id)).toEqual(log.map((entry) => `ev_e1_${entry.seq}`))
      expect(await redis.conversations.snapshot(id, 'tenant')).toEqual(await memory.conversations.snapshot(id, 'tenant'))

      // Every append with events was published once, as the caller stamped it.
      const published = results.filter((result) => result.events.length > 0)
      await vi.waitFor(() => { expect(live.length).toBeGreaterThanOrEqual(published.length) }, WAIT)
      expect(live).toEqual(published.map(({ firstSeq, events }) => ({ kind: 'events', firstSeq, events })))
      await unsubscribe()
    } finally {
      await Promise.allSettled([redis.close(), memory.close()])
    }
  })

  it('lets a lapsed fence write a token until a newer fence is issued, then refuses it changing nothing', async () => {
    const { admin } = running
    const prefix = `tw-lean:${randomUUID()}:`
    const backend = redisBackend(prefix)
    const id = 'conv_fence'
    const k = conversationKeys(prefix, id)
    try {
      await backend.conversations.create(id, 'tenant', 'e1')
      const old = await backend.leases.acquire(id, 'instance-1', 'resp_1', 60_000)
      if (!old.granted) throw new Error('not granted')
      await backend.conversations.append(id, { fence: old.fence, events: [delta(0)], ops: [{ op: 'insert', item: assistantItem('item_a', '') }] })
      // The lease lapses (its key expires); no newer fence exists yet.
      await admin.del(k.lease)
      const late = await backend.conversations.append(id, { id: randomUUID(), fence: old.fence, events: [delta(1)], ops: [{ op: 'replace', item: assistantItem('item_a', 'late') }] })
      expect(late.firstSeq).toBe(2)

      const next = await backend.leases.acquire(id, 'instance-2', 'resp_2', 60_000)
      if (!next.granted) throw new Error('not granted')
      const before = await backend.conversations.snapshot(id, 'tenant')
      const stale = backend.conversations.append(id, { id: randomUUID(), fence: old.fence, events: [delta(2)], ops: [{ op: 'replace', item: assistantItem('item_a', 'stale') }] })
      expect(await codeOf(stale)).toBe('GW_ERR_LEASE_LOST')
      expect(await backend.conversations.snapshot(id, 'tenant')).toEqual(before)
      expect(await backend.conversations.readLog(id, 0)).toHaveLength(2)
      expect((await backend.conversations.append(id, { fence: next.fence, events: [delta(3)] })).firstSeq).toBe(3)
    } finally {
      await backend.close()
    }
  })

  it('gives the event log a token append creates a TTL while the refresh is skipped', async () => {
    const { admin } = running
    const prefix = `tw-lean:${randomUUID()}:`
    const backend = redisBackend(prefix)
    const id = 'conv_log_ttl'
    const k = conversationKeys(prefix, id)
    try {
      // create() counts as a refresh, so the next appends skip theirs.
      await backend.conversations.create(id, 'tenant', 'e1')
      await admin.pexpire(k.meta, 20_000)
      await backend.conversations.append(id, { id: randomUUID(), events: [] })
      expect(await admin.exists(k.events)).toBe(0)
      await backend.conversations.append(id, { id: randomUUID(), events: [delta(1), delta(2)] })
      expect(await admin.pttl(k.events)).toBeGreaterThan(20_000)
      expect(await admin.pttl(k.events)).toBeLessThanOrEqual(limits.ttlMs)
      expect(await admin.pttl(k.meta)).toBeLessThanOrEqual(20_000) // not refreshed
    } finally {
      await backend.close()
    }
  })
})
