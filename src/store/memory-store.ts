/**
 * The embedded default store: conversations in process memory, bounded by count (least
 * recently used are evicted first) and by idle time. Lost on restart; use Redis for that.
 */
import { gatewayError } from '../errors.js'
import { newId } from '../ids.js'
import type { Item } from '../protocol/events.js'
import type { ConversationStore } from './conversation-store.js'

export interface MemoryStoreOptions {
  /** Most conversations kept; the least recently used beyond it are dropped. */
  readonly maxConversations: number
  /** A conversation untouched this long is dropped, in ms. */
  readonly ttlMs: number
  /** Most items one conversation may hold. */
  readonly maxItems: number
  /** Clock, for tests. */
  readonly now?: () => number
}

interface Entry { readonly tenant: string, readonly items: Item[], touchedAt: number }

export class MemoryStore implements ConversationStore {
  readonly #entries = new Map<string, Entry>()
  readonly #options: MemoryStoreOptions
  readonly #now: () => number
  readonly #sweep: NodeJS.Timeout

  constructor (options: MemoryStoreOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
    this.#sweep = setInterval(() => this.#expire(), Math.min(options.ttlMs, 60_000)).unref()
  }

  async create (tenant: string): Promise<string> {
    const id = newId('conv')
    this.#entries.set(id, { tenant, items: [], touchedAt: this.#now() })
    while (this.#entries.size > this.#options.maxConversations) {
      const oldest = this.#entries.keys().next().value
      if (oldest === undefined) break
      this.#entries.delete(oldest)
    }
    return id
  }

  async items (conversationId: string, tenant: string): Promise<Item[] | undefined> {
    // Another tenant's id must neither read nor keep the conversation alive.
    if (this.#entries.get(conversationId)?.tenant !== tenant) return undefined
    const entry = this.#touch(conversationId)
    return entry === undefined ? undefined : structuredClone(entry.items)
  }

  async insert (conversationId: string, item: Item, previousItemId?: string | null): Promise<string | null> {
    const entry = this.#require(conversationId)
    if (entry.items.some((existing) => existing.id === item.id)) throw gatewayError('GW_ERR_ITEM_DUPLICATE_ID', [item.id])
    if (entry.items.length >= this.#options.maxItems) throw gatewayError('GW_ERR_CONVERSATION_FULL', [this.#options.maxItems])
    let at = entry.items.length
    if (previousItemId === null) at = 0
    else if (previousItemId !== undefined) {
      const index = entry.items.findIndex((existing) => existing.id === previousItemId)
      if (index === -1) throw gatewayError('GW_ERR_ITEM_NOT_FOUND', [previousItemId], { param: 'previous_item_id' })
      at = index + 1
    }
    entry.items.splice(at, 0, structuredClone(item))
    return entry.items[at - 1]?.id ?? null
  }

  async replace (conversationId: string, item: Item): Promise<boolean> {
    const entry = this.#require(conversationId)
    const index = entry.items.findIndex((existing) => existing.id === item.id)
    if (index === -1) return false
    entry.items[index] = structuredClone(item)
    return true
  }

  async delete (conversationId: string, itemId: string): Promise<boolean> {
    const entry = this.#require(conversationId)
    const index = entry.items.findIndex((existing) => existing.id === itemId)
    if (index === -1) return false
    entry.items.splice(index, 1)
    return true
  }

  async close (): Promise<void> {
    clearInterval(this.#sweep)
    this.#entries.clear()
  }

  /** Looks an entry up, drops it if expired, else marks it most recently used. */
  #touch (conversationId: string): Entry | undefined {
    const entry = this.#entries.get(conversationId)
    if (entry === undefined) return undefined
    this.#entries.delete(conversationId)
    if (this.#now() - entry.touchedAt > this.#options.ttlMs) return undefined
    entry.touchedAt = this.#now()
    this.#entries.set(conversationId, entry)
    return entry
  }

  #require (conversationId: string): Entry {
    const entry = this.#touch(conversationId)
    if (entry === undefined) throw gatewayError('GW_ERR_CONVERSATION_NOT_FOUND', [conversationId])
    return entry
  }

  #expire (): void {
    const cutoff = this.#now() - this.#options.ttlMs
    for (const [id, entry] of this.#entries) {
      if (entry.touchedAt < cutoff) this.#entries.delete(id)
    }
  }
}
