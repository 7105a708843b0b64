/**
 * Writes one producer's events to a conversation's log with group commit: the first event goes
 * out at once; events emitted while an append is in flight wait and leave together in the
 * next one. So an idle conversation pays one round trip per event, a busy one one per batch,
 * and never one per token. Appends are strictly sequential, so the log keeps emit order.
 */
import type { Item } from '../protocol/events.js'
import type { AppendRequest, AppendResult, ConversationStore, ItemOp } from '../store/conversation-store.js'

export interface WriterOptions {
  readonly store: ConversationStore
  readonly conversationId: string
  /** The lease fence every append must carry, for a response's writer. */
  readonly fence?: number
  /** Told about every committed append (to deliver it locally without waiting for the feed). */
  readonly onCommitted: (result: AppendResult) => void
  /** Told once when an append fails; the writer then drops everything emitted after it. */
  readonly onFailed?: (err: unknown) => void
}

interface Pending {
  events: string[]
  ops: ItemOp[]
  active?: AppendRequest['active']
  /** Items whose current state is written (as a replace) with this batch: streamed text so far. */
  dirty: Map<string, Item>
  hasInsert: boolean
}

export class ConversationWriter {
  readonly #options: WriterOptions
  readonly #queue: Pending[] = []
  #inFlight: Promise<void> | undefined
  #failure: unknown

  constructor (options: WriterOptions) {
    this.#options = options
  }

  /** The error that stopped this writer (e.g. GW_ERR_LEASE_LOST), if one did. */
  get failure (): unknown {
    return this.#failure
  }

  /**
   * Queues one event (a JSON object without event_id) with the item change it describes.
   * An event carrying an insert starts a new batch if one is already pending, so each append
   * has at most one insert and its `previous_item_id` marker is unambiguous.
   */
  emit (json: string, op?: ItemOp, active?: AppendRequest['active']): void {
    if (this.#failure !== undefined) return
    let batch = this.#queue.at(-1)
    if (batch === undefined || (op?.op === 'insert' && batch.hasInsert) || (active !== undefined && batch.active !== undefined)) {
      batch = { events: [], ops: [], dirty: new Map(), hasInsert: false }
      this.#queue.push(batch)
    }
    batch.events.push(json)
    if (op !== undefined) batch.ops.push(op)
    if (op?.op === 'insert') batch.hasInsert = true
    if (active !== undefined) batch.active = active
    this.#pump()
  }

  /** Marks an item whose state (e.g. its text so far) should be saved with the next batch. */
  touch (item: Item): void {
    const batch = this.#queue.at(-1)
    if (batch !== undefined) batch.dirty.set(item.id, item)
  }

  /** Resolves when everything emitted so far is committed; rejects with the writer's failure. */
  async flush (): Promise<void> {
    while (this.#inFlight !== undefined) await this.#inFlight
    if (this.#failure !== undefined) throw this.#failure
  }

  #pump (): void {
    if (this.#inFlight !== undefined || this.#queue.length === 0) return
    this.#inFlight = Promise.resolve().then(async () => {
      // Everything queued up to now leaves together (one insert per batch is kept by emit()).
      const batch = this.#queue.shift()
      if (batch === undefined) return
      const ops = [...batch.ops, ...[...batch.dirty.values()].map((item): ItemOp => ({ op: 'replace', item: structuredClone(item) }))]
      const { fence } = this.#options
      const request: AppendRequest = {
        events: batch.events,
        ...(ops.length > 0 ? { ops } : {}),
        ...(fence === undefined ? {} : { fence }),
        ...(batch.active === undefined ? {} : { active: batch.active })
      }
      const result = await this.#options.store.append(this.#options.conversationId, request)
      this.#options.onCommitted(result)
    }).catch((err: unknown) => {
      this.#failure = err
      this.#queue.length = 0
      this.#options.onFailed?.(err)
    }).finally(() => {
      this.#inFlight = undefined
      this.#pump()
    })
  }
}
