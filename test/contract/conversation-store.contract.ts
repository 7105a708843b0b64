/**
 * The one contract every Backend (memory, Redis, Redis Cluster) passes: ConversationStore,
 * LiveFeed and LeaseStore, every error code, atomicity of failed appends and the exact bytes
 * of stamped events. A backend under test must be built with `contractLimits`.
 */
import { randomUUID } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Item } from '../../src/protocol/events.js'
import {
  PREVIOUS_ITEM_MARKER, parseEventId, stampEvent,
  type Backend, type LeaseGrant, type LiveMessage
} from '../../src/store/conversation-store.js'
import { codeOf, userItem } from '../helpers/store-fixtures.js'

/** The limits the backend under test must be created with. */
export const contractLimits = { ttlMs: 60_000, maxLogEvents: 10, maxItems: 6 } as const

/** Upper bound for waiting on a condition (a delivery, a lease lapsing). */
const WAIT = { timeout: 5_000, interval: 5 }
const SHORT_LEASE_MS = 150
const LEASE_MS = 30_000

type UserItem = Extract<Item, { role: 'user' }>

/** An assistant message with no content yet (an empty array, which cjson would turn into `{}`). */
function assistantItem (id: string, status: Item['status']): Item {
  return { id, object: 'realtime.item', status, type: 'message', role: 'assistant', content: [] }
}

/** A server event as the session layer serialises it (no event_id yet). */
function addedEvent (item: Item): string {
  return JSON.stringify({ type: 'conversation.item.added', previous_item_id: '__previous_item_id__', item })
}

function deltaEvent (n: number): string {
  return JSON.stringify({ type: 'response.output_text.delta', delta: `d${n}` })
}

/** Collects live messages; `waitFor` polls (bounded) until a condition holds. */
function collector () {
  const messages: LiveMessage[] = []
  return {
    messages,
    listener: (message: LiveMessage) => { messages.push(message) },
    waitForCount: async (count: number) => {
      await vi.waitFor(() => { expect(messages.length).toBeGreaterThanOrEqual(count) }, WAIT)
    }
  }
}

export function conversationStoreContract (
  name: string,
  makeBackend: () => Promise<{ backend: Backend, teardown (): Promise<void> }>
): void {
  describe(`ConversationStore contract: ${name}`, () => {
    let backend: Backend
    let teardown: () => Promise<void>
    const tenant = 'tenant-a'

    beforeEach(async () => {
      ({ backend, teardown } = await makeBackend())
    })
    afterEach(async () => {
      await teardown()
    })

    const newIds = () => ({ id: `conv_${randomUUID().replaceAll('-', '')}`, epoch: `e${randomUUID().replaceAll('-', '').slice(0, 12)}` })

    async function created () {
      const ids = newIds()
      await backend.conversations.create(ids.id, tenant, ids.epoch)
      return ids
    }

    async function granted (conversationId: string, responseId = 'resp_1', ttlMs = LEASE_MS) {
      const grant = await backend.leases.acquire(conversationId, 'instance-1', responseId, ttlMs)
      if (!grant.granted) throw new Error(`lease busy (${grant.holderResponseId})`)
      return grant
    }

    /** Polls `acquire` until the lease (short ttl) has lapsed and it is granted. */
    async function acquireAfterLapse (conversationId: string, responseId: string) {
      let grant: LeaseGrant | undefined
      await vi.waitFor(async () => {
        grant = await backend.leases.acquire(conversationId, 'instance-2', responseId, LEASE_MS)
        expect(grant.granted).toBe(true)
      }, WAIT)
      if (grant === undefined || !grant.granted) throw new Error('not granted')
      return grant
    }

    it('reports its kind and readiness', async () => {
      expect(['memory', 'redis', 'redis-cluster']).toContain(backend.kind)
      await vi.waitFor(async () => { expect(await backend.ready()).toBe(true) }, WAIT)
    })

    describe('create / snapshot', () => {
      it('creates an empty conversation', async () => {
        const { id, epoch } = await created()
        expect(await backend.conversations.snapshot(id, tenant)).toEqual({
          epoch, lastSeq: 0, firstSeq: 1, items: [], leased: false
        })
      })

      it('hides unknown ids and other tenants\' conversations alike', async () => {
        const { id } = await created()
        expect(await backend.conversations.snapshot(id, 'tenant-b')).toBeUndefined()
        expect(await backend.conversations.snapshot(newIds().id, tenant)).toBeUndefined()
        expect(await backend.conversations.snapshot(id, tenant)).toBeDefined()
      })

      it('returns fresh objects: mutating a snapshot or an appended item changes nothing stored', async () => {
        const { id } = await created()
        const item = userItem('item_a', 'original')
        await backend.conversations.append(id, { events: [], ops: [{ op: 'insert', item }] })
        item.content[0] = { type: 'input_text', text: 'mutated after append' }
        const first = await backend.conversations.snapshot(id, tenant)
        const stored = first?.items[0] as UserItem
        expect(stored.content).toEqual([{ type: 'input_text', text: 'original' }])
        stored.content.push({ type: 'input_text', text: 'mutated snapshot' })
        first?.items.pop()
        const second = await backend.conversations.snapshot(id, tenant)
        expect(second?.items).toEqual([userItem('item_a', 'original')])
        expect(second?.items[0]).not.toBe(first?.items[0])
      })

      it('keeps empty arrays and nested values intact', async () => {
        const { id } = await created()
        const empty = assistantItem('item_empty', 'completed')
        const call: Item = { id: 'item_call', object: 'realtime.item', status: 'completed', type: 'function_call', call_id: 'call_1', name: 'f', arguments: '{"a":[],"b":{}}' }
        await backend.conversations.append(id, { events: [], ops: [{ op: 'insert', item: empty }, { op: 'insert', item: call }] })
        const snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.items).toEqual([empty, call])
        expect(JSON.stringify(snapshot?.items[0])).toBe(JSON.stringify(empty))
      })
    })

    describe('append', () => {
      it('inserts at the end, stamping events byte-exactly and naming the previous item', async () => {
        const { id, epoch } = await created()
        const a = userItem('item_a')
        const first = await backend.conversations.append(id, { events: [addedEvent(a)], ops: [{ op: 'insert', item: a }] })
        expect(first).toEqual({ firstSeq: 1, previousItemId: null, events: [stampEvent(addedEvent(a), epoch, 1, null)] })
        expect(first.events[0]).toContain('"previous_item_id":null')
        expect(first.events[0]?.startsWith(`{"event_id":"ev_${epoch}_1",`)).toBe(true)
        expect(parseEventId(JSON.parse(first.events[0] ?? '{}').event_id)).toEqual({ epoch, seq: 1 })

        const b = userItem('item_b')
        const second = await backend.conversations.append(id, { events: [addedEvent(b), deltaEvent(1)], ops: [{ op: 'insert', item: b }] })
        expect(second).toEqual({
          firstSeq: 2,
          previousItemId: 'item_a',
          events: [stampEvent(addedEvent(b), epoch, 2, 'item_a'), stampEvent(deltaEvent(1), epoch, 3, 'item_a')]
        })
        expect(second.events[0]).toContain('"previous_item_id":"item_a"')
        const snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.items.map((item) => item.id)).toEqual(['item_a', 'item_b'])
        expect(snapshot?.lastSeq).toBe(3)
      })

      it('inserts at the start and after a given item', async () => {
        const { id, epoch } = await created()
        await backend.conversations.append(id, { events: [], ops: [{ op: 'insert', item: userItem('item_a') }, { op: 'insert', item: userItem('item_b') }] })
        const start = await backend.conversations.append(id, { events: [addedEvent(userItem('item_s'))], ops: [{ op: 'insert', item: userItem('item_s'), after: null }] })
        expect(start.previousItemId).toBeNull()
        expect(start.events).toEqual([stampEvent(addedEvent(userItem('item_s')), epoch, 1, null)])
        const after = await backend.conversations.append(id, { events: [addedEvent(userItem('item_m'))], ops: [{ op: 'insert', item: userItem('item_m'), after: 'item_a' }] })
        expect(after.previousItemId).toBe('item_a')
        expect(after.events).toEqual([stampEvent(addedEvent(userItem('item_m')), epoch, 2, 'item_a')])
        const snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.items.map((item) => item.id)).toEqual(['item_s', 'item_a', 'item_m', 'item_b'])
      })

      it('names the predecessor of the first insert when one append inserts several items', async () => {
        const { id, epoch } = await created()
        await backend.conversations.append(id, { events: [], ops: [{ op: 'insert', item: userItem('item_a') }] })
        // The marker twice: only its first occurrence is replaced (stampEvent's rule).
        const event = JSON.stringify({ type: 'x', previous_item_id: '__previous_item_id__', also: '__previous_item_id__' })
        const result = await backend.conversations.append(id, {
          events: [event],
          ops: [{ op: 'insert', item: userItem('item_b') }, { op: 'insert', item: userItem('item_c'), after: null }]
        })
        expect(result.previousItemId).toBe('item_a')
        expect(result.events).toEqual([stampEvent(event, epoch, 1, 'item_a')])
        expect(result.events[0]).toContain(`"also":${PREVIOUS_ITEM_MARKER}`)
        const snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.items.map((item) => item.id)).toEqual(['item_c', 'item_a', 'item_b'])
      })

      it('leaves the marker alone and omits previousItemId without inserts', async () => {
        const { id, epoch } = await created()
        const event = addedEvent(userItem('item_x'))
        const result = await backend.conversations.append(id, { events: [event] })
        expect(result).toEqual({ firstSeq: 1, events: [stampEvent(event, epoch, 1, undefined)] })
        expect('previousItemId' in result).toBe(false)
        expect(result.events[0]).toContain(PREVIOUS_ITEM_MARKER)
      })

      it('appends ops without events: firstSeq is the next sequence number, no event is logged', async () => {
        const { id } = await created()
        await backend.conversations.append(id, { events: [deltaEvent(1)] })
        const result = await backend.conversations.append(id, { events: [], ops: [{ op: 'insert', item: userItem('item_a') }] })
        expect(result).toEqual({ firstSeq: 2, events: [], previousItemId: null })
        expect((await backend.conversations.snapshot(id, tenant))?.lastSeq).toBe(1)
        expect(await backend.conversations.readLog(id, 0)).toHaveLength(1)
      })

      it('replaces an item in place and ignores a replace of a missing one', async () => {
        const { id } = await created()
        await backend.conversations.append(id, { events: [], ops: [{ op: 'insert', item: userItem('item_a') }, { op: 'insert', item: userItem('item_b') }] })
        const updated = userItem('item_a', 'updated')
        await backend.conversations.append(id, { events: [deltaEvent(1)], ops: [{ op: 'replace', item: updated }, { op: 'replace', item: userItem('item_gone') }] })
        const snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.items).toEqual([updated, userItem('item_b')])
        expect(snapshot?.lastSeq).toBe(1)
      })

      it('deletes an item', async () => {
        const { id } = await created()
        await backend.conversations.append(id, { events: [], ops: ['item_a', 'item_b', 'item_c'].map((itemId) => ({ op: 'insert' as const, item: userItem(itemId) })) })
        await backend.conversations.append(id, { events: [deltaEvent(1)], ops: [{ op: 'delete', itemId: 'item_b' }] })
        expect((await backend.conversations.snapshot(id, tenant))?.items.map((item) => item.id)).toEqual(['item_a', 'item_c'])
        // A deleted id can be inserted again.
        await backend.conversations.append(id, { events: [], ops: [{ op: 'insert', item: userItem('item_b') }] })
        expect((await backend.conversations.snapshot(id, tenant))?.items.map((item) => item.id)).toEqual(['item_a', 'item_c', 'item_b'])
      })

      it('applies ops in order: later ops see earlier ones', async () => {
        const { id } = await created()
        await backend.conversations.append(id, {
          events: [],
          ops: [
            { op: 'insert', item: userItem('item_a') },
            { op: 'insert', item: userItem('item_b'), after: 'item_a' },
            { op: 'delete', itemId: 'item_a' },
            { op: 'replace', item: userItem('item_b', 'b2') }
          ]
        })
        expect((await backend.conversations.snapshot(id, tenant))?.items).toEqual([userItem('item_b', 'b2')])
      })

      describe('rejects, changing nothing', () => {
        async function expectUnchanged (id: string, before: Awaited<ReturnType<Backend['conversations']['snapshot']>>) {
          const after = await backend.conversations.snapshot(id, tenant)
          expect(after?.lastSeq).toBe(before?.lastSeq)
          expect(after?.items).toEqual(before?.items)
          expect(await backend.conversations.readLog(id, 0)).toHaveLength(before?.lastSeq ?? 0)
        }

        async function seeded () {
          const ids = await created()
          await backend.conversations.append(ids.id, { events: [deltaEvent(0)], ops: [{ op: 'insert', item: userItem('item_a') }, { op: 'insert', item: userItem('item_b') }] })
          return { ...ids, before: await backend.conversations.snapshot(ids.id, tenant) }
        }

        it('GW_ERR_ITEM_DUPLICATE_ID for an id already present (even after valid ops)', async () => {
          const { id, before } = await seeded()
          const failed = backend.conversations.append(id, {
            events: [deltaEvent(1)],
            ops: [{ op: 'insert', item: userItem('item_new') }, { op: 'replace', item: userItem('item_a', 'changed') }, { op: 'insert', item: userItem('item_b') }]
          })
          expect(await codeOf(failed)).toBe('GW_ERR_ITEM_DUPLICATE_ID')
          await expectUnchanged(id, before)
        })

        it('GW_ERR_ITEM_NOT_FOUND for an unknown previous item', async () => {
          const { id, before } = await seeded()
          const failed = backend.conversations.append(id, {
            events: [deltaEvent(1)],
            ops: [{ op: 'delete', itemId: 'item_a' }, { op: 'insert', item: userItem('item_new'), after: 'item_missing' }]
          })
          expect(await codeOf(failed)).toBe('GW_ERR_ITEM_NOT_FOUND')
          await expectUnchanged(id, before)
        })

        it('GW_ERR_ITEM_NOT_FOUND for a delete of an unknown item', async () => {
          const { id, before } = await seeded()
          const failed = backend.conversations.append(id, {
            events: [deltaEvent(1)],
            ops: [{ op: 'insert', item: userItem('item_new') }, { op: 'delete', itemId: 'item_missing' }]
          })
          expect(await codeOf(failed)).toBe('GW_ERR_ITEM_NOT_FOUND')
          await expectUnchanged(id, before)
        })

        it('GW_ERR_CONVERSATION_FULL past maxItems', async () => {
          const { id, before } = await seeded()
          const ops = Array.from({ length: contractLimits.maxItems - 1 }, (_, i) => ({ op: 'insert' as const, item: userItem(`item_${i}`) }))
          const failed = backend.conversations.append(id, { events: [deltaEvent(1)], ops })
          expect(await codeOf(failed)).toBe('GW_ERR_CONVERSATION_FULL')
          await expectUnchanged(id, before)
          // Exactly maxItems fit.
          await backend.conversations.append(id, { events: [], ops: ops.slice(1) })
          expect((await backend.conversations.snapshot(id, tenant))?.items).toHaveLength(contractLimits.maxItems)
        })

        it('GW_ERR_CONVERSATION_NOT_FOUND for an unknown conversation', async () => {
          expect(await codeOf(backend.conversations.append(newIds().id, { events: [deltaEvent(1)] }))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
          expect(await codeOf(backend.conversations.readLog(newIds().id, 0))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
          expect(await codeOf(backend.leases.acquire(newIds().id, 'instance-1', 'resp_1', LEASE_MS))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
        })

        it('GW_ERR_LEASE_LOST for a stale fence or no lease', async () => {
          const { id, before } = await seeded()
          expect(await codeOf(backend.conversations.append(id, { events: [deltaEvent(1)], fence: 1 }))).toBe('GW_ERR_LEASE_LOST')
          await expectUnchanged(id, before)
          const old = await granted(id)
          await backend.leases.release(id, old.fence)
          const current = await granted(id, 'resp_2')
          expect(current.fence).toBeGreaterThan(old.fence)
          const stale = backend.conversations.append(id, { events: [deltaEvent(1)], fence: old.fence, ops: [{ op: 'insert', item: userItem('item_new') }] })
          expect(await codeOf(stale)).toBe('GW_ERR_LEASE_LOST')
          await expectUnchanged(id, before)
        })
      })

      it('applies an append sent twice with the same id once, answering the retry with the first result', async () => {
        const { id } = await created()
        const item = { id: 'item_once', object: 'realtime.item' as const, type: 'message' as const, role: 'user' as const, status: 'completed' as const, content: [{ type: 'input_text' as const, text: 'once' }] }
        const request = { id: 'append-1', events: ['{"type":"a","previous_item_id":"__previous_item_id__"}', '{"type":"b"}'], ops: [{ op: 'insert' as const, item }] }
        const first = await backend.conversations.append(id, request)
        const again = await backend.conversations.append(id, request)
        expect(again).toEqual(first)
        const snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.lastSeq).toBe(2)
        expect(snapshot?.items.map((i) => i.id)).toEqual(['item_once'])
        const other = await backend.conversations.append(id, { id: 'append-2', events: ['{"type":"c"}'] })
        expect(other.firstSeq).toBe(3)
      })

      it('accepts an append carrying the current fence', async () => {
        const { id } = await created()
        const { fence } = await granted(id)
        const result = await backend.conversations.append(id, { events: [deltaEvent(1)], fence, ops: [{ op: 'insert', item: userItem('item_a') }] })
        expect(result.firstSeq).toBe(1)
        expect((await backend.conversations.snapshot(id, tenant))?.items.map((item) => item.id)).toEqual(['item_a'])
      })
    })

    describe('active response', () => {
      it('shows the active response, the items fenced appends inserted, and clears it at the end', async () => {
        const { id } = await created()
        await backend.conversations.append(id, { events: [deltaEvent(0)], ops: [{ op: 'insert', item: userItem('item_user') }] })
        const { fence } = await granted(id, 'resp_1')
        const start = await backend.conversations.append(id, {
          events: [deltaEvent(1), deltaEvent(2)],
          fence,
          active: { responseId: 'resp_1', state: 'start' },
          ops: [{ op: 'insert', item: assistantItem('item_out1', 'in_progress') }]
        })
        expect(start.firstSeq).toBe(2)
        let snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.active).toEqual({ responseId: 'resp_1', seq: 2, itemIds: ['item_out1'] })
        expect(snapshot?.leased).toBe(true)

        await backend.conversations.append(id, { events: [deltaEvent(3)], fence, ops: [{ op: 'insert', item: assistantItem('item_out2', 'in_progress') }] })
        // Unfenced inserts (a client's item) are not the response's.
        await backend.conversations.append(id, { events: [deltaEvent(4)], ops: [{ op: 'insert', item: userItem('item_client') }] })
        snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.active).toEqual({ responseId: 'resp_1', seq: 2, itemIds: ['item_out1', 'item_out2'] })

        await backend.conversations.append(id, {
          events: [deltaEvent(5)],
          fence,
          active: { responseId: 'resp_1', state: 'end' },
          ops: [{ op: 'replace', item: assistantItem('item_out1', 'completed') }, { op: 'replace', item: assistantItem('item_out2', 'completed') }]
        })
        snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.active).toBeUndefined()
        await backend.leases.release(id, fence)
        expect((await backend.conversations.snapshot(id, tenant))?.leased).toBe(false)
        const next = await granted(id, 'resp_2')
        expect(next.orphan).toBeUndefined()
      })

      it('a new start replaces the previous response\'s items', async () => {
        const { id } = await created()
        const { fence } = await granted(id)
        await backend.conversations.append(id, { events: [deltaEvent(1)], fence, active: { responseId: 'resp_1', state: 'start' }, ops: [{ op: 'insert', item: assistantItem('item_1', 'in_progress') }] })
        await backend.conversations.append(id, { events: [deltaEvent(2)], fence, active: { responseId: 'resp_2', state: 'start' } })
        expect((await backend.conversations.snapshot(id, tenant))?.active).toEqual({ responseId: 'resp_2', seq: 2, itemIds: [] })
      })
    })

    describe('readLog', () => {
      it('returns the entries after a sequence number, oldest first, exactly as stamped', async () => {
        const { id } = await created()
        const first = await backend.conversations.append(id, { events: [deltaEvent(1), deltaEvent(2)] })
        const second = await backend.conversations.append(id, { events: [deltaEvent(3)] })
        const all = [...first.events, ...second.events].map((event, i) => ({ seq: i + 1, event }))
        expect(await backend.conversations.readLog(id, 0)).toEqual(all)
        expect(await backend.conversations.readLog(id, 1)).toEqual(all.slice(1))
        expect(await backend.conversations.readLog(id, 2)).toEqual(all.slice(2))
        expect(await backend.conversations.readLog(id, 3)).toEqual([])
        expect(await backend.conversations.readLog(id, 99)).toEqual([])
      })

      it('keeps only the newest maxLogEvents entries', async () => {
        const { id } = await created()
        const total = contractLimits.maxLogEvents + 3
        await backend.conversations.append(id, { events: Array.from({ length: 5 }, (_, i) => deltaEvent(i)) })
        await backend.conversations.append(id, { events: Array.from({ length: total - 5 }, (_, i) => deltaEvent(i + 5)) })
        const log = await backend.conversations.readLog(id, 0)
        expect(log.map((entry) => entry.seq)).toEqual(Array.from({ length: contractLimits.maxLogEvents }, (_, i) => i + 4))
        const snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.firstSeq).toBe(4)
        expect(snapshot?.lastSeq).toBe(total)
      })
    })

    describe('live feed', () => {
      it('delivers exactly the stamped events, in order, and cancel requests', async () => {
        const { id } = await created()
        const other = await created()
        const inbox = collector()
        const unsubscribe = await backend.live.subscribe(id, inbox.listener)
        const first = await backend.conversations.append(id, { events: [deltaEvent(1), deltaEvent(2)], ops: [{ op: 'insert', item: userItem('item_a') }] })
        await backend.conversations.append(other.id, { events: [deltaEvent(99)] })
        const second = await backend.conversations.append(id, { events: [deltaEvent(3)] })
        await backend.live.publishCancel(id, 'resp_9')
        await backend.live.publishCancel(id)
        await inbox.waitForCount(4)
        expect(inbox.messages).toEqual([
          { kind: 'events', firstSeq: 1, events: first.events },
          { kind: 'events', firstSeq: 3, events: second.events },
          { kind: 'cancel', responseId: 'resp_9' },
          { kind: 'cancel' }
        ])
        await unsubscribe()
      })

      it('stops delivering after unsubscribe while other subscribers keep receiving', async () => {
        const { id } = await created()
        const leaving = collector()
        const staying = collector()
        const leave = await backend.live.subscribe(id, leaving.listener)
        const stay = await backend.live.subscribe(id, staying.listener)
        await backend.conversations.append(id, { events: [deltaEvent(1)] })
        await leaving.waitForCount(1)
        await staying.waitForCount(1)
        await leave()
        await leave()
        await backend.conversations.append(id, { events: [deltaEvent(2)] })
        await backend.live.publishCancel(id)
        await staying.waitForCount(3)
        expect(leaving.messages).toHaveLength(1)
        await stay()
        // Subscribing again after everyone left works.
        const again = collector()
        const unsubscribe = await backend.live.subscribe(id, again.listener)
        const appended = await backend.conversations.append(id, { events: [deltaEvent(3)] })
        await again.waitForCount(1)
        expect(again.messages).toEqual([{ kind: 'events', firstSeq: 3, events: appended.events }])
        await unsubscribe()
      })
    })

    describe('leases', () => {
      it('acquire / busy / refresh / release', async () => {
        const { id } = await created()
        const grant = await granted(id, 'resp_1')
        expect(grant.fence).toBeGreaterThanOrEqual(1)
        expect(grant.orphan).toBeUndefined()
        // No response marked active yet: the holder is idle (between responses, or about to release).
        expect(await backend.leases.acquire(id, 'instance-2', 'resp_2', LEASE_MS)).toEqual({ granted: false, holderResponseId: 'resp_1', idle: true })
        await backend.conversations.append(id, { events: [deltaEvent(1)], fence: grant.fence, active: { responseId: 'resp_1', state: 'start' } })
        expect(await backend.leases.acquire(id, 'instance-2', 'resp_2', LEASE_MS)).toEqual({ granted: false, holderResponseId: 'resp_1', idle: false })
        await backend.conversations.append(id, { events: [deltaEvent(2)], fence: grant.fence, active: { responseId: 'resp_1', state: 'end' } })
        expect(await backend.leases.acquire(id, 'instance-2', 'resp_2', LEASE_MS)).toEqual({ granted: false, holderResponseId: 'resp_1', idle: true })
        expect((await backend.conversations.snapshot(id, tenant))?.leased).toBe(true)
        expect(await backend.leases.refresh(id, grant.fence, LEASE_MS)).toBe(true)
        expect(await backend.leases.refresh(id, grant.fence + 1, LEASE_MS)).toBe(false)
        await backend.leases.release(id, grant.fence + 1)
        expect((await backend.leases.acquire(id, 'instance-2', 'resp_2', LEASE_MS)).granted).toBe(false)
        await backend.leases.release(id, grant.fence)
        expect((await backend.conversations.snapshot(id, tenant))?.leased).toBe(false)
        const next = await granted(id, 'resp_2')
        expect(next.fence).toBeGreaterThan(grant.fence)
        expect(await backend.leases.refresh(id, grant.fence, LEASE_MS)).toBe(false)
        expect(await backend.leases.refresh(id, next.fence, LEASE_MS)).toBe(true)
        // Unknown conversations: nothing to refresh or release.
        expect(await backend.leases.refresh(newIds().id, 1, LEASE_MS)).toBe(false)
        await expect(backend.leases.release(newIds().id, 1)).resolves.toBeUndefined()
      })

      it('lapses after its ttl; the old fence is then refused', async () => {
        const { id } = await created()
        const old = await granted(id, 'resp_1', SHORT_LEASE_MS)
        const next = await acquireAfterLapse(id, 'resp_2')
        expect(next.fence).toBeGreaterThan(old.fence)
        expect(next.orphan).toBeUndefined()
        expect(await backend.leases.refresh(id, old.fence, LEASE_MS)).toBe(false)
        expect(await codeOf(backend.conversations.append(id, { events: [deltaEvent(1)], fence: old.fence }))).toBe('GW_ERR_LEASE_LOST')
        await backend.conversations.append(id, { events: [deltaEvent(1)], fence: next.fence })
      })

      it('lets a lapsed fence write and re-take its lease while no newer fence was issued', async () => {
        const { id } = await created()
        const old = await granted(id, 'resp_1', SHORT_LEASE_MS)
        await vi.waitFor(async () => {
          expect((await backend.conversations.snapshot(id, tenant))?.leased).toBe(false)
        }, WAIT)
        const late = await backend.conversations.append(id, { events: [deltaEvent(1)], fence: old.fence, ops: [{ op: 'insert', item: userItem('item_a') }] })
        expect(late.firstSeq).toBe(1)
        expect(await backend.leases.refresh(id, old.fence, LEASE_MS)).toBe(true)
        expect((await backend.conversations.snapshot(id, tenant))?.leased).toBe(true)
        expect(await backend.leases.acquire(id, 'instance-2', 'resp_2', LEASE_MS)).toEqual({ granted: false, holderResponseId: 'resp_1', idle: true })
        await backend.leases.release(id, old.fence)
      })

      it('a grant asked for items carries them, exactly as a snapshot reads them; a refusal does not', async () => {
        const { id } = await created()
        const empty = await backend.leases.acquire(id, 'instance-1', 'resp_0', LEASE_MS, { items: true })
        expect(empty).toEqual({ granted: true, fence: empty.granted ? empty.fence : 0, items: [] })
        if (empty.granted) await backend.leases.release(id, empty.fence)
        const call: Item = { id: 'item_call', object: 'realtime.item', status: 'completed', type: 'function_call', call_id: 'call_1', name: 'f', arguments: '{"a":[],"b":{}}' }
        await backend.conversations.append(id, { events: [deltaEvent(1)], ops: [{ op: 'insert', item: userItem('item_a') }, { op: 'insert', item: userItem('item_b') }, { op: 'insert', item: call }] })
        await backend.conversations.append(id, {
          events: [deltaEvent(2)],
          ops: [
            { op: 'insert', item: userItem('item_s'), after: null },
            { op: 'insert', item: assistantItem('item_m', 'completed'), after: 'item_a' },
            { op: 'delete', itemId: 'item_b' },
            { op: 'replace', item: userItem('item_a', 'edited') }
          ]
        })
        const grant = await backend.leases.acquire(id, 'instance-1', 'resp_1', LEASE_MS, { items: true })
        if (!grant.granted) throw new Error('not granted')
        const snapshot = await backend.conversations.snapshot(id, tenant)
        expect(grant.items).toEqual(snapshot?.items)
        expect(grant.items?.map((item) => item.id)).toEqual(['item_s', 'item_a', 'item_m', 'item_call'])
        expect(JSON.stringify(grant.items?.[3])).toBe(JSON.stringify(call))
        expect(grant.orphan).toBeUndefined()
        // Fresh objects: changing them changes nothing stored.
        grant.items?.pop()
        expect((await backend.conversations.snapshot(id, tenant))?.items).toHaveLength(4)
        // Busy: the same refusal as without the option.
        expect(await backend.leases.acquire(id, 'instance-2', 'resp_2', LEASE_MS, { items: true })).toEqual({ granted: false, holderResponseId: 'resp_1', idle: true })
        await backend.leases.release(id, grant.fence)
        // Not asked: no items.
        const plain = await granted(id, 'resp_3')
        expect('items' in plain).toBe(false)
        await backend.leases.release(id, plain.fence)
        expect(await codeOf(backend.leases.acquire(newIds().id, 'instance-1', 'resp_1', LEASE_MS, { items: true }))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
      })

      it('a grant asked for items reports an orphan with them: the items as left, still in progress', async () => {
        const { id } = await created()
        await backend.conversations.append(id, { events: [], ops: [{ op: 'insert', item: userItem('item_user') }] })
        const old = await granted(id, 'resp_1', SHORT_LEASE_MS)
        const open = assistantItem('item_out', 'in_progress')
        await backend.conversations.append(id, { events: [deltaEvent(1)], fence: old.fence, active: { responseId: 'resp_1', state: 'start' }, ops: [{ op: 'insert', item: open }] })
        let next: LeaseGrant | undefined
        await vi.waitFor(async () => {
          next = await backend.leases.acquire(id, 'instance-2', 'resp_2', LEASE_MS, { items: true })
          expect(next.granted).toBe(true)
        }, WAIT)
        expect(next).toEqual({
          granted: true,
          fence: next?.granted === true ? next.fence : 0,
          orphan: { responseId: 'resp_1', items: [open] },
          items: [userItem('item_user'), open]
        })
      })

      it('reports an orphaned response, with its items still in progress, once its lease lapsed', async () => {
        const { id } = await created()
        await backend.conversations.append(id, { events: [], ops: [{ op: 'insert', item: userItem('item_user', 'hi', 'in_progress') }] })
        const old = await granted(id, 'resp_1', SHORT_LEASE_MS)
        const open1 = assistantItem('item_out1', 'in_progress')
        const done = assistantItem('item_out2', 'in_progress')
        const open3: Item = { id: 'item_out3', object: 'realtime.item', status: 'in_progress', type: 'function_call', call_id: 'call_1', name: 'f', arguments: '' }
        await backend.conversations.append(id, { events: [deltaEvent(1)], fence: old.fence, active: { responseId: 'resp_1', state: 'start' }, ops: [{ op: 'insert', item: open1 }] })
        await backend.conversations.append(id, { events: [deltaEvent(2)], fence: old.fence, ops: [{ op: 'insert', item: done }, { op: 'insert', item: open3 }] })
        await backend.conversations.append(id, { events: [deltaEvent(3)], fence: old.fence, ops: [{ op: 'replace', item: { ...done, status: 'completed' } }] })

        const next = await acquireAfterLapse(id, 'resp_2')
        expect(next.orphan).toEqual({ responseId: 'resp_1', items: [open1, open3] })
        const snapshot = await backend.conversations.snapshot(id, tenant)
        expect(snapshot?.active?.responseId).toBe('resp_1')
        expect(snapshot?.leased).toBe(true)
        // The orphan's items are fresh objects.
        const orphanItem = next.orphan?.items[0]
        if (orphanItem !== undefined) orphanItem.status = 'incomplete'
        expect((await backend.conversations.snapshot(id, tenant))?.items[1]).toEqual(open1)

        // The new holder ends it; then no orphan is reported any more.
        await backend.conversations.append(id, {
          events: [deltaEvent(4)],
          fence: next.fence,
          active: { responseId: 'resp_1', state: 'end' },
          ops: [{ op: 'replace', item: { ...open1, status: 'incomplete' } }, { op: 'replace', item: { ...open3, status: 'incomplete' } }]
        })
        await backend.leases.release(id, next.fence)
        expect((await granted(id, 'resp_3')).orphan).toBeUndefined()
      })
    })
  })
}
