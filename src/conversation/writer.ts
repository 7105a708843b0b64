/**
 * Writes one producer's events to a conversation's log in small batches: an event after a
 * quiet spell, one that opens an item (its first token) and one that starts or ends a response
 * go out at once (cutting a linger short); otherwise at most one append
 * starts per `lingerMs` (BATCH_LINGER_MS), and everything emitted meanwhile — or while an
 * append is in flight — leaves together in the next one. So tokens faster than the linger share
 * a round trip; a stream slower than it pays one per token, never waiting on the previous one
 * beyond the linger. Appends are strictly sequential, so the log keeps emit order.
 *
 * When the store is unavailable the writer degrades instead of failing: events are shown to
 * this instance's sockets at once (without cursors) and kept, up to MAX_BACKLOG_EVENTS; once
 * the store answers again they are committed in order, so the log, the history and every
 * other instance's clients get them too, and local sockets skip the copies they already saw.
 */
import { randomUUID } from 'node:crypto'
import { storeAppend } from '../diagnostics.js'
import { isGatewayError } from '../errors.js'
import type { Item } from '../protocol/events.js'
import type { AppendRequest, AppendResult, ConversationStore, ItemOp } from '../store/conversation-store.js'

/** Events kept while the store is down before the writer gives up. */
const MAX_BACKLOG_EVENTS = 50_000
/** Pause between attempts to commit the backlog, in ms. */
const RETRY_MS = 250
/**
 * Least time between two saves of a streamed item's state (its text so far), in ms. Saving it
 * with every batch rewrites the whole text each time — quadratic in the reply's length. Its final
 * state always goes with its done event; until then the saved state may lack the deltas logged
 * since the last save (up to this much streaming, however long the stream then pauses). Attaching
 * clients replay an item in flight from the log, so only a read of the stored item mid-stream
 * (conversation.item.retrieve, or another instance ending a dead instance's reply) sees that lag.
 */
const ITEM_SAVE_MS = 250

export interface WriterOptions {
  readonly store: ConversationStore
  readonly conversationId: string
  /** The lease fence every append must carry, for a response's writer. */
  readonly fence?: number
  /** Least time between the starts of two appends, in ms (BATCH_LINGER_MS). */
  readonly lingerMs: number
  /** Told about every committed append (to deliver it locally without waiting for the feed). */
  readonly onCommitted: (result: AppendResult) => void
  /** Told once when the writer gives up; it then drops everything emitted after it. */
  readonly onFailed?: (err: unknown) => void
  /** Degraded mode: shows a batch's events (JSON without event_id) to local sockets now, uncommitted. */
  readonly onUncommitted: (events: readonly string[], batchId: string) => void
  /** Degraded mode: local sockets must not take live events while the backlog is committed. */
  readonly holdLocal: () => void
  /** …and may again; those that were shown batch `batchId` skip its committed range. */
  readonly releaseLocal: (skip?: { firstSeq: number, lastSeq: number, batchId: string }) => void
}

interface Batch {
  events: string[]
  ops: ItemOp[]
  active?: AppendRequest['active']
  /** Streamed items whose state (text so far) this batch saves, fixed when it is first sent. */
  saves?: ItemOp[]
  hasInsert: boolean
  /** Holds an event a client waits on (an item's opening, a response's start or end): no linger. */
  urgent: boolean
  /** Already shown to local sockets (degraded mode). */
  shown: boolean
  /** Being (or was) sent: later events go to a new batch. */
  sealed: boolean
  /** Idempotency key, the same on every attempt. */
  readonly id: string
}

export class ConversationWriter {
  readonly #options: WriterOptions
  readonly #queue: Batch[] = []
  #inFlight: Promise<void> | undefined
  #failure: unknown
  #degraded = false
  /** Events shown to local sockets but not yet committed. */
  #backlog = 0
  #lastCommitAt = -Infinity
  /** Ends the current commit's linger early (an urgent event arrived). */
  #lingering: (() => void) | undefined
  /** Streamed items whose state changed since they were last saved. */
  readonly #dirty = new Map<string, Item>()
  #lastItemSaveAt = -Infinity

  constructor (options: WriterOptions) {
    this.#options = options
  }

  /**
   * Queues one event (a JSON object without event_id) with the item change it describes.
   * An event carrying an insert starts a new batch if one is already pending, so each append
   * has at most one insert and its `previous_item_id` marker is unambiguous.
   */
  emit (json: string, op?: ItemOp, active?: AppendRequest['active']): void {
    if (this.#failure !== undefined) return
    let batch = this.#queue.at(-1)
    if (batch === undefined || batch.sealed || (op?.op === 'insert' && batch.hasInsert) || (active !== undefined && batch.active !== undefined)) {
      batch = { events: [], ops: [], hasInsert: false, urgent: false, shown: false, sealed: false, id: randomUUID() }
      this.#queue.push(batch)
    }
    batch.events.push(json)
    if (op !== undefined) batch.ops.push(op)
    // The op carries the item's state: an older streamed state must not be saved after it.
    if (op?.op === 'replace') this.#dirty.delete(op.item.id)
    else if (op?.op === 'delete') this.#dirty.delete(op.itemId)
    if (op?.op === 'insert') batch.hasInsert = true
    if (op?.op === 'insert' || active !== undefined) {
      batch.urgent = true
      this.#lingering?.()
    }
    if (active !== undefined) batch.active = active
    if (!this.#degraded) return this.#pump()
    // Degraded: show just this event now; the batch is committed whole once the store is back.
    batch.shown = true
    this.#options.onUncommitted([json], batch.id)
    if (++this.#backlog > MAX_BACKLOG_EVENTS) this.#fail(new Error(`store unavailable with over ${MAX_BACKLOG_EVENTS} events waiting`))
  }

  /** Marks an item whose state (its text so far) changed: saved with a coming batch (ITEM_SAVE_MS). */
  touch (item: Item): void {
    if (this.#failure === undefined) this.#dirty.set(item.id, item)
  }

  /** Resolves when everything emitted so far is committed; rejects with the writer's failure. */
  async flush (): Promise<void> {
    while (this.#inFlight !== undefined) await this.#inFlight
    if (this.#failure !== undefined) throw this.#failure
  }

  /** Entering degraded mode: shows every queued, not yet shown batch to local sockets. */
  #show (): void {
    for (const batch of this.#queue) {
      if (batch.shown) continue
      batch.shown = true
      this.#backlog += batch.events.length
      this.#options.onUncommitted(batch.events, batch.id)
    }
  }

  #fail (err: unknown): void {
    if (this.#failure !== undefined) return
    this.#failure = err
    this.#queue.length = 0
    this.#options.onFailed?.(err)
  }

  #pump (): void {
    if (this.#inFlight !== undefined || this.#queue.length === 0 || this.#failure !== undefined) return
    this.#inFlight = this.#commit().finally(() => {
      this.#inFlight = undefined
      this.#pump()
    })
  }

  async #commit (): Promise<void> {
    // Let this tick's emits join the batch first: a token's events come in one synchronous run,
    // and the batch's first event is not the one that opens the item (output_item.added is).
    await Promise.resolve()
    // In a busy stream, the next few ms of tokens join too. A batch a client waits on (the first
    // token of an item, the response's start or end) does not wait, and ends a linger under way.
    const wait = this.#queue[0]?.urgent === true ? 0 : this.#lastCommitAt + this.#options.lingerMs - performance.now()
    if (wait > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, wait)
        function done (): void {
          clearTimeout(timer)
          resolve()
        }
        this.#lingering = done
      })
      this.#lingering = undefined
    }
    const batch = this.#queue[0]
    if (batch === undefined) return
    batch.sealed = true
    this.#lastCommitAt = performance.now()
    const { fence, store, conversationId } = this.#options
    // A shallow copy is a snapshot: a run replaces an item's fields (content, status, arguments…),
    // never mutates them in place; the store copies or serialises what it keeps.
    if (batch.saves === undefined) {
      batch.saves = []
      if (this.#dirty.size > 0 && this.#lastCommitAt - this.#lastItemSaveAt >= ITEM_SAVE_MS) {
        this.#lastItemSaveAt = this.#lastCommitAt
        for (const [id, item] of this.#dirty) {
          // An item a later batch inserts is not in the store yet: it waits for a later save.
          if (this.#queue.some((later) => later !== batch && later.ops.some((op) => op.op === 'insert' && op.item.id === id))) continue
          batch.saves.push({ op: 'replace', item: { ...item } })
          this.#dirty.delete(id)
        }
      }
    }
    const ops = batch.saves.length === 0 ? batch.ops : [...batch.ops, ...batch.saves]
    const request: AppendRequest = {
      id: batch.id,
      events: batch.events,
      ...(ops.length > 0 ? { ops } : {}),
      ...(fence === undefined ? {} : { fence }),
      ...(batch.active === undefined ? {} : { active: batch.active })
    }
    if (batch.shown) this.#options.holdLocal()
    let result: AppendResult | undefined
    try {
      result = await storeAppend.tracePromise(() => store.append(conversationId, request), { conversationId, events: batch.events.length })
    } catch (err) {
      if (batch.shown) this.#options.releaseLocal()
      if (isGatewayError(err) && err.code === 'GW_ERR_STORE_UNAVAILABLE') {
        // Keep the batch; show it (and what follows) now; try again shortly.
        if (!this.#degraded) this.#show()
        this.#degraded = true
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
        return
      }
      this.#fail(err)
      return
    }
    this.#queue.shift()
    if (batch.shown) {
      this.#backlog -= batch.events.length
      this.#options.releaseLocal({ firstSeq: result.firstSeq, lastSeq: result.firstSeq + result.events.length - 1, batchId: batch.id })
    } else {
      this.#options.onCommitted(result)
    }
    if (this.#queue.every((b) => !b.shown)) this.#degraded = false
  }
}
