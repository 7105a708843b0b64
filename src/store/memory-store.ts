/**
 * The embedded default backend: conversations, their event logs, live feeds and leases in
 * process memory. One instance only (nothing is shared); bounded by count (least recently used
 * are evicted first) and by idle time. Same contract as the Redis backend.
 */
import { gatewayError } from '../errors.js'
import { createMemoryRateLimits } from '../limits/rate-limits.js'
import type { Item } from '../protocol/events.js'
import { createMemoryUsage } from './usage-memory.js'
import {
  stampEvent,
  type AppendRequest, type AppendResult, type Backend, type ConversationStore, type LeaseGrant,
  type LeaseStore, type LiveFeed, type LiveMessage, type LogEntry, type Snapshot
} from './conversation-store.js'

export interface MemoryBackendOptions {
  /** Most conversations kept; the least recently used beyond it are dropped. */
  readonly maxConversations: number
  /** A conversation untouched this long is dropped, in ms. */
  readonly ttlMs: number
  /** Events kept per conversation log (EVENT_LOG_MAX_EVENTS). */
  readonly maxLogEvents: number
  /** Most items one conversation may hold. */
  readonly maxItems: number
  /** Clock, for tests. */
  readonly now?: () => number
}

interface Conversation {
  readonly tenant: string
  readonly epoch: string
  seq: number
  fence: number
  items: Item[]
  log: LogEntry[]
  active?: { responseId: string, seq: number, itemIds: Set<string> }
  lease?: { fence: number, owner: string, responseId: string, expiresAt: number }
  /** The last applied append with an idempotency key, and its result. */
  lastAppend?: { id: string, result: AppendResult }
  touchedAt: number
}

export function createMemoryBackend (options: MemoryBackendOptions): Backend {
  const now = options.now ?? Date.now
  const conversations = new Map<string, Conversation>()
  const listeners = new Map<string, Set<(message: LiveMessage) => void>>()
  const sweep = setInterval(() => {
    const cutoff = now() - options.ttlMs
    for (const [id, c] of conversations) if (c.touchedAt < cutoff) conversations.delete(id)
  }, Math.min(options.ttlMs, 60_000)).unref()

  /** Looks a conversation up, drops it if expired, else marks it most recently used. */
  const touch = (id: string): Conversation | undefined => {
    const c = conversations.get(id)
    if (c === undefined) return undefined
    conversations.delete(id)
    if (now() - c.touchedAt > options.ttlMs) return undefined
    c.touchedAt = now()
    conversations.set(id, c)
    return c
  }
  const require = (id: string): Conversation => {
    const c = touch(id)
    if (c === undefined) throw gatewayError('GW_ERR_CONVERSATION_NOT_FOUND', [id])
    return c
  }
  const publish = (id: string, message: LiveMessage): void => {
    const set = listeners.get(id)
    if (set === undefined) return
    for (const listener of set) queueMicrotask(() => listener(message))
  }
  const liveLease = (c: Conversation) => c.lease !== undefined && c.lease.expiresAt > now() ? c.lease : undefined
  /**
   * Whether `fence` may write: it holds the lease, or the lease lapsed (e.g. the store was
   * unreachable) and no newer fence was issued since — nobody else can have written.
   */
  const holds = (c: Conversation, fence: number) => {
    const lease = liveLease(c)
    return lease === undefined ? c.fence === fence : lease.fence === fence
  }

  const store: ConversationStore = {
    async create (id, tenant, epoch) {
      conversations.set(id, { tenant, epoch, seq: 0, fence: 0, items: [], log: [], touchedAt: now() })
      while (conversations.size > options.maxConversations) {
        const oldest = conversations.keys().next().value
        if (oldest === undefined) break
        conversations.delete(oldest)
      }
    },

    async snapshot (id, tenant): Promise<Snapshot | undefined> {
      // Another tenant's id must neither read nor keep the conversation alive.
      if (conversations.get(id)?.tenant !== tenant) return undefined
      const c = touch(id)
      if (c === undefined) return undefined
      return {
        epoch: c.epoch,
        lastSeq: c.seq,
        firstSeq: c.log[0]?.seq ?? c.seq + 1,
        items: structuredClone(c.items),
        ...(c.active === undefined ? {} : { active: { responseId: c.active.responseId, seq: c.active.seq, itemIds: [...c.active.itemIds] } }),
        leased: liveLease(c) !== undefined
      }
    },

    async append (id, request: AppendRequest): Promise<AppendResult> {
      const c = require(id)
      if (request.id !== undefined && c.lastAppend?.id === request.id) return c.lastAppend.result
      if (request.fence !== undefined && !holds(c, request.fence)) throw gatewayError('GW_ERR_LEASE_LOST', [request.fence])
      const items = applyOps(c.items, request, options.maxItems)
      c.items = items.items
      const firstSeq = c.seq + 1
      if (request.active?.state === 'start') c.active = { responseId: request.active.responseId, seq: firstSeq, itemIds: new Set() }
      if (request.fence !== undefined && c.active !== undefined) for (const itemId of items.inserted) c.active.itemIds.add(itemId)
      const events = request.events.map((json) => stampEvent(json, c.epoch, ++c.seq, items.previousItemId))
      c.log.push(...events.map((event, i) => ({ seq: firstSeq + i, event })))
      if (c.log.length > options.maxLogEvents) c.log.splice(0, c.log.length - options.maxLogEvents)
      if (request.active?.state === 'end') delete c.active
      if (events.length > 0) publish(id, { kind: 'events', firstSeq, events })
      const result = { firstSeq, events, ...(items.previousItemId === undefined ? {} : { previousItemId: items.previousItemId }) }
      if (request.id !== undefined) c.lastAppend = { id: request.id, result }
      return result
    },

    async readLog (id, afterSeq) {
      return require(id).log.filter((entry) => entry.seq > afterSeq)
    }
  }

  const live: LiveFeed = {
    async subscribe (id, listener) {
      let set = listeners.get(id)
      if (set === undefined) listeners.set(id, set = new Set())
      const own = (message: LiveMessage) => listener(message)
      set.add(own)
      return async () => {
        set.delete(own)
        if (set.size === 0 && listeners.get(id) === set) listeners.delete(id)
      }
    },
    async publishCancel (id, responseId) {
      publish(id, responseId === undefined ? { kind: 'cancel' } : { kind: 'cancel', responseId })
    }
  }

  const leases: LeaseStore = {
    async acquire (id, owner, responseId, ttlMs, acquireOptions = {}): Promise<LeaseGrant> {
      const c = require(id)
      const held = liveLease(c)
      if (held !== undefined) return { granted: false, holderResponseId: held.responseId, idle: c.active === undefined }
      const fence = ++c.fence
      c.lease = { fence, owner, responseId, expiresAt: now() + ttlMs }
      const items = acquireOptions.items === true ? { items: structuredClone(c.items) } : {}
      if (c.active === undefined) return { granted: true, fence, ...items }
      const open = c.items.filter((item) => c.active?.itemIds.has(item.id) === true && item.status === 'in_progress')
      return { granted: true, fence, orphan: { responseId: c.active.responseId, items: structuredClone(open) }, ...items }
    },
    async refresh (id, fence, ttlMs) {
      const c = touch(id)
      if (c === undefined || !holds(c, fence)) return false
      const lease = liveLease(c)
      if (lease === undefined) c.lease = { fence, owner: c.lease?.owner ?? '', responseId: c.lease?.responseId ?? '', expiresAt: now() + ttlMs }
      else lease.expiresAt = now() + ttlMs
      return true
    },
    async release (id, fence) {
      const c = touch(id)
      if (c?.lease?.fence === fence) delete c.lease
    }
  }

  return {
    kind: 'memory',
    conversations: store,
    live,
    leases,
    limits: createMemoryRateLimits(now),
    usage: createMemoryUsage(now),
    ready: async () => true,
    async close () {
      clearInterval(sweep)
      conversations.clear()
      listeners.clear()
    }
  }
}

/**
 * Applies item ops to a copy of `items`, validating all of them first so a failing append
 * changes nothing. Returns the new list, the ids inserted and the first insert's predecessor.
 */
function applyOps (current: Item[], request: AppendRequest, maxItems: number) {
  if (request.ops === undefined || request.ops.length === 0) return { items: current, inserted: [], previousItemId: undefined }
  const items = [...current]
  const inserted: string[] = []
  let previousItemId: string | null | undefined
  for (const op of request.ops ?? []) {
    if (op.op === 'insert') {
      if (items.some((i) => i.id === op.item.id)) throw gatewayError('GW_ERR_ITEM_DUPLICATE_ID', [op.item.id])
      if (items.length >= maxItems) throw gatewayError('GW_ERR_CONVERSATION_FULL', [maxItems])
      let at = items.length
      if (op.after === null) at = 0
      else if (op.after !== undefined) {
        const index = items.findIndex((i) => i.id === op.after)
        if (index === -1) throw gatewayError('GW_ERR_ITEM_NOT_FOUND', [op.after], { param: 'previous_item_id' })
        at = index + 1
      }
      if (previousItemId === undefined) previousItemId = items[at - 1]?.id ?? null
      items.splice(at, 0, structuredClone(op.item))
      inserted.push(op.item.id)
    } else if (op.op === 'replace') {
      const index = items.findIndex((i) => i.id === op.item.id)
      if (index !== -1) items[index] = structuredClone(op.item)
    } else {
      const index = items.findIndex((i) => i.id === op.itemId)
      if (index === -1) throw gatewayError('GW_ERR_ITEM_NOT_FOUND', [op.itemId], { param: 'item_id' })
      items.splice(index, 1)
    }
  }
  return { items, inserted, previousItemId }
}
