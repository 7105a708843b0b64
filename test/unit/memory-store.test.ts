import { afterEach, describe, expect, it } from 'vitest'
import type { Item } from '../../src/protocol/events.js'
import { MemoryStore, type MemoryStoreOptions } from '../../src/store/memory-store.js'

const stores: MemoryStore[] = []

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()))
})

/** A controllable clock: `clock.now()` for the store, `clock.advance(ms)` for the test. */
function makeClock (start = 1_000_000) {
  let t = start
  return { now: () => t, advance: (ms: number) => { t += ms } }
}

function makeStore (options: Partial<MemoryStoreOptions> = {}): MemoryStore {
  const store = new MemoryStore({ maxConversations: 100, ttlMs: 60_000, maxItems: 100, ...options })
  stores.push(store)
  return store
}

type UserItem = Extract<Item, { role: 'user' }>

function userItem (id: string, text = `text of ${id}`): UserItem {
  return { id, object: 'realtime.item', status: 'completed', type: 'message', role: 'user', content: [{ type: 'input_text', text }] }
}

/** Resolves the rejection's `code` (matched on code, never instanceof). */
async function codeOf (promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return (err as { code?: unknown }).code
  }
  throw new Error('expected the promise to reject')
}

const ids = (items: Item[] | undefined) => items?.map((item) => item.id)

describe('MemoryStore basics', () => {
  it('creates an empty conversation with a conv_ id', async () => {
    const store = makeStore()
    const id = await store.create('t1')
    expect(id).toMatch(/^conv_/)
    expect(await store.items(id, 't1')).toEqual([])
  })

  it('creates distinct ids', async () => {
    const store = makeStore()
    const a = await store.create('t1')
    const b = await store.create('t1')
    expect(a).not.toBe(b)
  })

  it('inserts at the end by default and returns the previous item id', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    expect(await store.insert(conv, userItem('a'))).toBeNull()
    expect(await store.insert(conv, userItem('b'))).toBe('a')
    expect(await store.insert(conv, userItem('c'), undefined)).toBe('b')
    expect(ids(await store.items(conv, 't1'))).toEqual(['a', 'b', 'c'])
  })

  it('inserts after a given item', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    await store.insert(conv, userItem('c'))
    expect(await store.insert(conv, userItem('b'), 'a')).toBe('a')
    expect(await store.insert(conv, userItem('d'), 'c')).toBe('c')
    expect(ids(await store.items(conv, 't1'))).toEqual(['a', 'b', 'c', 'd'])
  })

  it('inserts at the start when previousItemId is null', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    await store.insert(conv, userItem('b'))
    expect(await store.insert(conv, userItem('a'), null)).toBeNull()
    expect(ids(await store.items(conv, 't1'))).toEqual(['a', 'b'])
  })

  it('inserts at the start of an empty conversation with null', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    expect(await store.insert(conv, userItem('a'), null)).toBeNull()
    expect(ids(await store.items(conv, 't1'))).toEqual(['a'])
  })

  it('stores the item content unchanged', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    const item = userItem('a', 'hello ✓')
    await store.insert(conv, item)
    expect(await store.items(conv, 't1')).toEqual([item])
  })

  it('rejects a duplicate id with GW_ERR_ITEM_DUPLICATE_ID and leaves the conversation as it was', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a', 'first'))
    expect(await codeOf(store.insert(conv, userItem('a', 'second')))).toBe('GW_ERR_ITEM_DUPLICATE_ID')
    expect(await store.items(conv, 't1')).toEqual([userItem('a', 'first')])
  })

  it('rejects an unknown previous item with GW_ERR_ITEM_NOT_FOUND (param previous_item_id)', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    const err = await store.insert(conv, userItem('b'), 'nope').catch((e: unknown) => e as { code: string, param?: string })
    expect(err).toMatchObject({ code: 'GW_ERR_ITEM_NOT_FOUND', param: 'previous_item_id' })
    expect(ids(await store.items(conv, 't1'))).toEqual(['a'])
  })

  it('rejects an insert beyond maxItems with GW_ERR_CONVERSATION_FULL', async () => {
    const store = makeStore({ maxItems: 2 })
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    await store.insert(conv, userItem('b'))
    expect(await codeOf(store.insert(conv, userItem('c')))).toBe('GW_ERR_CONVERSATION_FULL')
    expect(await codeOf(store.insert(conv, userItem('c'), null))).toBe('GW_ERR_CONVERSATION_FULL')
    expect(ids(await store.items(conv, 't1'))).toEqual(['a', 'b'])
  })

  it('accepts an insert again after a delete frees room', async () => {
    const store = makeStore({ maxItems: 1 })
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    expect(await store.delete(conv, 'a')).toBe(true)
    await store.insert(conv, userItem('b'))
    expect(ids(await store.items(conv, 't1'))).toEqual(['b'])
  })

  it('replace returns true and swaps the item in place', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    await store.insert(conv, userItem('b', 'draft'))
    await store.insert(conv, userItem('c'))
    expect(await store.replace(conv, userItem('b', 'final'))).toBe(true)
    const items = await store.items(conv, 't1')
    expect(ids(items)).toEqual(['a', 'b', 'c'])
    expect(items?.[1]).toEqual(userItem('b', 'final'))
  })

  it('replace returns false for an unknown item and changes nothing', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    expect(await store.replace(conv, userItem('zzz'))).toBe(false)
    expect(ids(await store.items(conv, 't1'))).toEqual(['a'])
  })

  it('delete returns true once, then false', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    await store.insert(conv, userItem('b'))
    expect(await store.delete(conv, 'a')).toBe(true)
    expect(await store.delete(conv, 'a')).toBe(false)
    expect(ids(await store.items(conv, 't1'))).toEqual(['b'])
  })
})

describe('MemoryStore isolation', () => {
  it("reads another tenant's conversation as undefined", async () => {
    const store = makeStore()
    const conv = await store.create('tenant-a')
    await store.insert(conv, userItem('a'))
    expect(await store.items(conv, 'tenant-b')).toBeUndefined()
    expect(ids(await store.items(conv, 'tenant-a'))).toEqual(['a'])
  })

  it('reads an unknown conversation as undefined', async () => {
    const store = makeStore()
    expect(await store.items('conv_unknown', 't1')).toBeUndefined()
  })

  it('returns copies: mutating the result does not change the store', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a', 'original'))
    const items = await store.items(conv, 't1')
    const first = items?.[0]
    if (first?.type !== 'message' || first.role !== 'user') throw new Error('expected a user message')
    first.content[0]!.text = 'mutated'
    first.id = 'changed'
    items?.push(userItem('extra'))
    expect(await store.items(conv, 't1')).toEqual([userItem('a', 'original')])
  })

  it('stores copies: mutating the inserted or replaced object does not change the store', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    const inserted = userItem('a', 'original')
    await store.insert(conv, inserted)
    inserted.content.push({ type: 'input_text', text: 'later' })
    const replacement = userItem('a', 'replaced')
    await store.replace(conv, replacement)
    replacement.content.length = 0
    expect(await store.items(conv, 't1')).toEqual([userItem('a', 'replaced')])
  })
})

describe('MemoryStore bounds', () => {
  it('evicts the oldest conversation beyond maxConversations', async () => {
    const store = makeStore({ maxConversations: 2 })
    const a = await store.create('t1')
    const b = await store.create('t1')
    const c = await store.create('t1')
    expect(await store.items(a, 't1')).toBeUndefined()
    expect(await store.items(b, 't1')).toEqual([])
    expect(await store.items(c, 't1')).toEqual([])
  })

  it('evicts the least recently touched conversation, not the least recently created', async () => {
    const store = makeStore({ maxConversations: 2 })
    const a = await store.create('t1')
    const b = await store.create('t1')
    await store.items(a, 't1') // a is now the most recently used
    const c = await store.create('t1')
    expect(await store.items(b, 't1')).toBeUndefined()
    expect(await store.items(a, 't1')).toEqual([])
    expect(await store.items(c, 't1')).toEqual([])
  })

  it('counts insert, replace and delete as touches', async () => {
    const store = makeStore({ maxConversations: 3 })
    const a = await store.create('t1')
    const b = await store.create('t1')
    const c = await store.create('t1')
    await store.insert(a, userItem('x'))
    await store.replace(b, userItem('none'))
    await store.delete(c, 'none')
    // Touch order now: a, b, c (c most recent). A new conversation evicts a.
    await store.create('t1')
    expect(await store.items(a, 't1')).toBeUndefined()
    expect(await store.items(b, 't1')).toEqual([])
    expect(await store.items(c, 't1')).toEqual([])
  })

  it('expires a conversation idle for longer than ttlMs', async () => {
    const clock = makeClock()
    const store = makeStore({ ttlMs: 1000, now: clock.now })
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    clock.advance(1001)
    expect(await store.items(conv, 't1')).toBeUndefined()
  })

  it('keeps a conversation idle for exactly ttlMs', async () => {
    const clock = makeClock()
    const store = makeStore({ ttlMs: 1000, now: clock.now })
    const conv = await store.create('t1')
    clock.advance(1000)
    expect(await store.items(conv, 't1')).toEqual([])
  })

  it('refreshes the idle TTL on every touch', async () => {
    const clock = makeClock()
    const store = makeStore({ ttlMs: 1000, now: clock.now })
    const conv = await store.create('t1')
    for (let i = 0; i < 5; i++) {
      clock.advance(900)
      expect(await store.items(conv, 't1')).toEqual([])
    }
    clock.advance(900)
    await store.insert(conv, userItem('a'))
    clock.advance(900)
    expect(ids(await store.items(conv, 't1'))).toEqual(['a'])
  })

  it('stays expired once expired, even if looked up again', async () => {
    const clock = makeClock()
    const store = makeStore({ ttlMs: 1000, now: clock.now })
    const conv = await store.create('t1')
    clock.advance(5000)
    expect(await store.items(conv, 't1')).toBeUndefined()
    expect(await store.items(conv, 't1')).toBeUndefined()
  })

  it('rejects operations on an unknown conversation with GW_ERR_CONVERSATION_NOT_FOUND', async () => {
    const store = makeStore()
    expect(await codeOf(store.insert('conv_unknown', userItem('a')))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
    expect(await codeOf(store.replace('conv_unknown', userItem('a')))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
    expect(await codeOf(store.delete('conv_unknown', 'a'))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
  })

  it('rejects operations on an expired conversation with GW_ERR_CONVERSATION_NOT_FOUND', async () => {
    const clock = makeClock()
    const store = makeStore({ ttlMs: 1000, now: clock.now })
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    clock.advance(1001)
    expect(await codeOf(store.insert(conv, userItem('b')))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
    expect(await codeOf(store.replace(conv, userItem('a')))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
    expect(await codeOf(store.delete(conv, 'a'))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
  })

  it('rejects operations on an evicted conversation with GW_ERR_CONVERSATION_NOT_FOUND', async () => {
    const store = makeStore({ maxConversations: 1 })
    const a = await store.create('t1')
    await store.create('t1')
    expect(await codeOf(store.insert(a, userItem('x')))).toBe('GW_ERR_CONVERSATION_NOT_FOUND')
  })
})

describe('MemoryStore close', () => {
  it('resolves, drops every conversation, and can be called twice', async () => {
    const store = makeStore()
    const conv = await store.create('t1')
    await store.insert(conv, userItem('a'))
    await expect(store.close()).resolves.toBeUndefined()
    expect(await store.items(conv, 't1')).toBeUndefined()
    await expect(store.close()).resolves.toBeUndefined()
  })
})
