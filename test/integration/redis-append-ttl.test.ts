/**
 * RedisStore refreshes a conversation's TTL on an append only when it has not done so for
 * ttl / 8. These tests hold it to its promise: every key of a conversation always has a TTL,
 * also the ones an append creates while the refresh is skipped, and a conversation in use
 * never expires.
 */
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { Backend } from '../../src/store/conversation-store.js'
import { conversationKeys, createRedisBackend } from '../../src/store/redis-store.js'
import { createLogSink } from '../helpers/log-sink.js'
import { assistantItem, userItem, useRedis } from '../helpers/store-fixtures.js'

const delta = (n: number) => JSON.stringify({ type: 'response.output_text.delta', delta: `d${n}` })

describe('RedisStore TTL refresh', () => {
  const running = useRedis()

  /** Every key under `prefix` with its PTTL (-1: no TTL). */
  async function ttls (prefix: string): Promise<Record<string, number>> {
    const { admin } = running
    const keys = await admin.keys(`${prefix}*`)
    const entries = await Promise.all(keys.map(async (key) => [key.slice(prefix.length), await admin.pttl(key)] as const))
    return Object.fromEntries(entries)
  }

  /** Every key has a TTL; the conversation's (all but the lease, which has its own) at most `ttlMs`. */
  async function expectEveryKeyExpires (prefix: string, ttlMs: number): Promise<Record<string, number>> {
    const found = await ttls(prefix)
    for (const [key, ttl] of Object.entries(found)) {
      expect(ttl, key).toBeGreaterThan(0)
      if (!key.endsWith(':lease')) expect(ttl, key).toBeLessThanOrEqual(ttlMs)
    }
    return found
  }

  it('gives every key an append creates a TTL while refreshes are skipped, and refreshes again after ttl / 8', async () => {
    const { admin, server } = running
    const ttlMs = 60_000
    const low = 20_000
    const prefix = `tw-ttl:${randomUUID()}:`
    let clock = 1_000
    const backend: Backend = createRedisBackend({ url: server.url, keyPrefix: prefix, ttlMs, maxLogEvents: 50, maxItems: 50, log: createLogSink('warn').logger, now: () => clock })
    const id = 'conv_ttl'
    const k = conversationKeys(prefix, id)
    const pttl = async (key: string) => await admin.pttl(key)
    try {
      await backend.conversations.create(id, 'tenant', 'e1')
      // Marks meta: a skipped refresh leaves its TTL this low.
      await admin.pexpire(k.meta, low)

      // Creates order, items and the events stream.
      await backend.conversations.append(id, { id: randomUUID(), events: [delta(1)], ops: [{ op: 'insert', item: userItem('item_u') }] })
      const grant = await backend.leases.acquire(id, 'instance-1', 'resp_1', 30_000)
      if (!grant.granted) throw new Error('not granted')
      const { fence } = grant
      // Creates active_items (a tracked insert).
      await backend.conversations.append(id, { id: randomUUID(), fence, active: { responseId: 'resp_1', state: 'start' }, events: [delta(2)], ops: [{ op: 'insert', item: assistantItem('item_a', '') }] })
      for (let i = 0; i < 5; i++) {
        await backend.conversations.append(id, { id: randomUUID(), fence, events: [delta(3 + i)], ops: [{ op: 'replace', item: assistantItem('item_a', `t${i}`) }] })
      }
      let found = await expectEveryKeyExpires(prefix, ttlMs)
      expect(Object.keys(found).sort()).toEqual(['{c:conv_ttl}:active_items', '{c:conv_ttl}:events', '{c:conv_ttl}:items', '{c:conv_ttl}:lease', '{c:conv_ttl}:meta', '{c:conv_ttl}:order'])
      expect(await pttl(k.meta)).toBeLessThanOrEqual(low) // no refresh happened
      for (const key of [k.order, k.items, k.activeItems, k.events]) expect(await pttl(key), key).toBeGreaterThan(low)

      // Emptied and created again in one skipped append: still expires.
      await backend.conversations.append(id, {
        id: randomUUID(),
        fence,
        events: [delta(10)],
        ops: [{ op: 'delete', itemId: 'item_u' }, { op: 'delete', itemId: 'item_a' }, { op: 'insert', item: assistantItem('item_b', '') }]
      })
      await admin.pexpire(k.order, low)
      await admin.pexpire(k.items, low)
      await backend.conversations.append(id, { id: randomUUID(), fence, events: [delta(11)], ops: [{ op: 'delete', itemId: 'item_b' }] })
      expect(await admin.exists(k.order, k.items)).toBe(0)
      // A replace of a missing item creates no key.
      await backend.conversations.append(id, { id: randomUUID(), fence, events: [delta(12)], ops: [{ op: 'replace', item: assistantItem('item_b', 'late') }] })
      expect(await admin.exists(k.items)).toBe(0)
      await backend.conversations.append(id, { id: randomUUID(), fence, events: [delta(13)], ops: [{ op: 'insert', item: userItem('item_c') }] })
      expect(await pttl(k.order)).toBeGreaterThan(low)
      expect(await pttl(k.items)).toBeGreaterThan(low)
      // A response's end drops active_items; the next start's insert creates it again.
      await backend.conversations.append(id, { id: randomUUID(), fence, active: { responseId: 'resp_1', state: 'end' }, events: [delta(14)] })
      expect(await admin.exists(k.activeItems)).toBe(0)
      await backend.conversations.append(id, { id: randomUUID(), fence, active: { responseId: 'resp_2', state: 'start' }, events: [delta(15)], ops: [{ op: 'insert', item: assistantItem('item_d', '') }] })
      expect(await pttl(k.activeItems)).toBeGreaterThan(low)
      await expectEveryKeyExpires(prefix, ttlMs)
      await backend.leases.release(id, fence)

      // Created anew (every key but meta dropped): appends create the rest, each with a TTL.
      await backend.conversations.create(id, 'tenant', 'e2')
      await admin.pexpire(k.meta, low)
      expect(Object.keys(await ttls(prefix))).toEqual(['{c:conv_ttl}:meta'])
      await backend.conversations.append(id, { id: randomUUID(), events: [delta(1), delta(2)], ops: [{ op: 'insert', item: userItem('item_u') }] })
      found = await expectEveryKeyExpires(prefix, ttlMs)
      expect(Object.keys(found).sort()).toEqual(['{c:conv_ttl}:events', '{c:conv_ttl}:items', '{c:conv_ttl}:meta', '{c:conv_ttl}:order'])
      expect(await pttl(k.meta)).toBeLessThanOrEqual(low)

      // ttl / 8 later an append refreshes every key.
      clock += ttlMs / 8
      const request = { id: randomUUID(), events: [delta(3)] }
      await backend.conversations.append(id, request)
      for (const key of [k.meta, k.order, k.items, k.events]) expect(await pttl(key), key).toBeGreaterThan(low)
      // A retry answered from the first attempt's result refreshes too, when it is due.
      await admin.pexpire(k.meta, low)
      clock += ttlMs / 8
      await backend.conversations.append(id, request)
      expect(await pttl(k.meta)).toBeGreaterThan(low)
      // A snapshot and a grant that read the items refresh every key, and count as refreshes.
      for (const read of [
        async () => { await backend.conversations.snapshot(id, 'tenant') },
        async () => {
          const taken = await backend.leases.acquire(id, 'instance-1', 'resp_3', 30_000, { items: true })
          if (taken.granted) await backend.leases.release(id, taken.fence)
        }
      ]) {
        clock += ttlMs / 8
        for (const key of [k.meta, k.order, k.items, k.events]) await admin.pexpire(key, low)
        await read()
        for (const key of [k.meta, k.order, k.items, k.events]) expect(await pttl(key), key).toBeGreaterThan(low)
        await admin.pexpire(k.meta, low)
        await backend.conversations.append(id, { id: randomUUID(), events: [delta(4)] })
        expect(await pttl(k.meta)).toBeLessThanOrEqual(low)
      }
      await expectEveryKeyExpires(prefix, ttlMs)
    } finally {
      await backend.close()
    }
  })

  it('keeps a conversation in use alive well past its TTL, every key with most of its TTL left', async () => {
    const { server } = running
    const ttlMs = 400
    const prefix = `tw-ttl:${randomUUID()}:`
    const backend = createRedisBackend({ url: server.url, keyPrefix: prefix, ttlMs, maxLogEvents: 20, maxItems: 10, log: createLogSink('warn').logger })
    const id = 'conv_busy'
    try {
      await backend.conversations.create(id, 'tenant', 'e1')
      const grant = await backend.leases.acquire(id, 'instance-1', 'resp_1', 30_000)
      if (!grant.granted) throw new Error('not granted')
      const { fence } = grant
      await backend.conversations.append(id, { fence, active: { responseId: 'resp_1', state: 'start' }, events: [delta(0)], ops: [{ op: 'insert', item: assistantItem('item_a', '') }] })
      // Streams tokens for four TTLs; each refresh must come before any key runs out.
      const until = performance.now() + 4 * ttlMs
      let text = ''
      for (let i = 1; performance.now() < until; i++) {
        text += ` t${i}`
        await backend.conversations.append(id, { id: randomUUID(), fence, events: [delta(i)], ops: [{ op: 'replace', item: assistantItem('item_a', text) }] })
        if (i % 25 === 0) {
          const found = await expectEveryKeyExpires(prefix, ttlMs)
          expect(Object.keys(found)).toHaveLength(6) // meta, order, items, active_items, events, lease
          for (const [key, ttl] of Object.entries(found)) if (!key.endsWith(':lease')) expect(ttl, key).toBeGreaterThan(ttlMs / 4)
        }
      }
      const snapshot = await backend.conversations.snapshot(id, 'tenant')
      expect(snapshot?.items).toEqual([assistantItem('item_a', text)])
      expect(snapshot?.active?.itemIds).toEqual(['item_a'])
    } finally {
      await backend.close()
    }
  })
})
