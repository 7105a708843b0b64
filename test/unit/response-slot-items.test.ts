/**
 * `reserve(…, { items: true })` hands the response its history with the lease, in one store
 * call; when it first had to end a dead instance's response, the items it hands over show that
 * ending, exactly as the store now holds them.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ConversationHubs } from '../../src/conversation/hub.js'
import { ConversationResponses } from '../../src/session/conversation-responses.js'
import type { Backend } from '../../src/store/conversation-store.js'
import { createMemoryBackend } from '../../src/store/memory-store.js'
import { createLogSink } from '../helpers/log-sink.js'
import { assistantItem, userItem } from '../helpers/store-fixtures.js'

const LEASE_MS = 1_000

describe('ConversationResponses.reserve with items', () => {
  const log = createLogSink('warn').logger
  let clock = 0
  let backend: Backend
  let hubs: ConversationHubs

  function setup (): ConversationResponses {
    clock = 1_000
    backend = createMemoryBackend({ maxConversations: 10, ttlMs: 60_000, maxLogEvents: 100, maxItems: 20, now: () => clock })
    hubs = new ConversationHubs(backend.live, log)
    return new ConversationResponses({ backend, hubs, instanceId: 'instance-1', leaseTtlMs: LEASE_MS, batchLingerMs: 0 })
  }

  afterEach(async () => {
    await hubs.close()
    await backend.close()
  })

  it('carries the items taken with the lease, and none unless asked', async () => {
    const responses = setup()
    await backend.conversations.create('conv_1', 'tenant', 'e1')
    await backend.conversations.append('conv_1', { events: [], ops: [{ op: 'insert', item: userItem('item_a') }, { op: 'insert', item: userItem('item_b') }] })
    const slot = await responses.reserve('conv_1', 'resp_1', log, { items: true })
    expect(slot.items).toEqual((await backend.conversations.snapshot('conv_1', 'tenant'))?.items)
    expect(slot.items?.map((item) => item.id)).toEqual(['item_a', 'item_b'])
    await slot.abandon()
    const plain = await responses.reserve('conv_1', 'resp_2', log)
    expect(plain.items).toBeUndefined()
    await plain.abandon()
  })

  it('after ending a dead instance\'s response, carries the items as that left them', async () => {
    const responses = setup()
    await backend.conversations.create('conv_2', 'tenant', 'e1')
    await backend.conversations.append('conv_2', { events: [], ops: [{ op: 'insert', item: userItem('item_u') }] })
    // Another instance starts a response, streams half an item, then dies (its lease lapses).
    const dead = await backend.leases.acquire('conv_2', 'instance-dead', 'resp_dead', LEASE_MS)
    if (!dead.granted) throw new Error('not granted')
    const partial = assistantItem('item_out', 'half an ans', 'in_progress')
    await backend.conversations.append('conv_2', {
      events: [JSON.stringify({ type: 'response.created' })],
      fence: dead.fence,
      active: { responseId: 'resp_dead', state: 'start' },
      ops: [{ op: 'insert', item: partial }]
    })
    clock += LEASE_MS + 1

    const slot = await responses.reserve('conv_2', 'resp_new', log, { items: true })
    const snapshot = await backend.conversations.snapshot('conv_2', 'tenant')
    expect(snapshot?.active).toBeUndefined()
    expect(slot.items).toEqual([userItem('item_u'), { ...partial, status: 'incomplete' }])
    expect(slot.items).toEqual(snapshot?.items)
    await slot.abandon()
  })
})
