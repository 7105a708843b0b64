/**
 * Where conversations live, shared by every instance: the items (history), the event log that
 * makes every conversation event a resumable cursor, the live feed that fans events out, and
 * the lease that keeps one response at a time per conversation. MemoryStore (embedded, one
 * instance) and RedisStore (many instances, Redis or Redis Cluster) implement the same three
 * interfaces and pass one contract suite (test/contract/conversation-store.contract.ts).
 */
import type { RateLimitStore } from '../limits/rate-limits.js'
import type { Item } from '../protocol/events.js'
import type { UsageStore } from './usage-store.js'

/**
 * Marker an appended event may carry as the JSON value of `previous_item_id`; the store
 * replaces it with the id before the request's first inserted item (`null` at the start),
 * so `conversation.item.added` can name its neighbour atomically.
 */
export const PREVIOUS_ITEM_MARKER = '"__previous_item_id__"'

/** A change to the conversation's items, applied atomically with the events it describes. */
export type ItemOp =
  /** `after`: undefined appends at the end, null inserts at the start, an id inserts after it. */
  | { readonly op: 'insert', readonly item: Item, readonly after?: string | null }
  /** Replaces the item with the same id; ignored if it was deleted meanwhile. */
  | { readonly op: 'replace', readonly item: Item }
  | { readonly op: 'delete', readonly itemId: string }

export interface AppendRequest {
  /**
   * Idempotency key. An append carrying the id of the conversation's last applied append is not
   * applied again; it resolves that append's result (a retry whose first reply was lost).
   */
  readonly id?: string
  /**
   * Server events serialised as JSON objects WITHOUT `event_id`. The store gives each the next
   * sequence number and stamps `"event_id":"<eventId(epoch, seq)>"` as its first member.
   */
  readonly events: readonly string[]
  readonly ops?: readonly ItemOp[]
  /** The caller's lease fence. Given: the append fails with GW_ERR_LEASE_LOST unless it is current. */
  readonly fence?: number
  /**
   * Marks the conversation's active response. `start`: it becomes `responseId`, starting at this
   * append's first event; items inserted by later fenced appends are remembered as its items.
   * `end`: no response is active.
   */
  readonly active?: { readonly responseId: string, readonly state: 'start' | 'end' }
}

export interface AppendResult {
  /** Sequence number of the first event (events got firstSeq, firstSeq + 1, …). */
  readonly firstSeq: number
  /** The stamped events, exactly as the log and every subscriber see them. */
  readonly events: readonly string[]
  /** The id before the first inserted item (null: it went first); undefined without inserts. */
  readonly previousItemId?: string | null
}

/** A consistent view of a conversation, taken atomically. */
export interface Snapshot {
  readonly epoch: string
  /** Sequence number of the last event appended (0: none yet). */
  readonly lastSeq: number
  /** Oldest sequence number still in the log (lastSeq + 1 when the log is empty). */
  readonly firstSeq: number
  /** Items, oldest first. */
  readonly items: Item[]
  /** The response being generated, if any: its id, its first event's seq, the items it inserted. */
  readonly active?: { readonly responseId: string, readonly seq: number, readonly itemIds: readonly string[] }
  /** Whether a lease is held now (false with `active` set: the generating instance died). */
  readonly leased: boolean
}

export interface LogEntry { readonly seq: number, readonly event: string }

export interface ConversationStore {
  /** Creates an empty conversation owned by `tenant`; `epoch` names this incarnation of its log. */
  create (conversationId: string, tenant: string, epoch: string): Promise<void>
  /**
   * The conversation as one consistent view, refreshing its idle TTL. Resolves `undefined` when
   * the id is unknown, expired or owned by another tenant (the three look the same).
   */
  snapshot (conversationId: string, tenant: string): Promise<Snapshot | undefined>
  /**
   * One atomic step: checks the fence, applies `ops` in order, appends the events to the log
   * (trimmed to the newest EVENT_LOG_MAX_EVENTS), refreshes the TTL and publishes the stamped
   * events on the live feed. (RedisStore skips a TTL refresh it made less than TTL / 8 ago, so
   * there an idle conversation expires between 7/8 of the TTL and all of it after its last append.)
   * Rejects, changing nothing, with GW_ERR_CONVERSATION_NOT_FOUND, GW_ERR_LEASE_LOST,
   * GW_ERR_ITEM_DUPLICATE_ID, GW_ERR_ITEM_NOT_FOUND or GW_ERR_CONVERSATION_FULL.
   */
  append (conversationId: string, request: AppendRequest): Promise<AppendResult>
  /** Log entries with seq > afterSeq, oldest first. */
  readLog (conversationId: string, afterSeq: number): Promise<LogEntry[]>
}

/** What a live-feed subscriber receives. */
export type LiveMessage =
  /** Stamped events, in log order, starting at `firstSeq`. */
  | { readonly kind: 'events', readonly firstSeq: number, readonly events: readonly string[] }
  /** Some client asked to cancel (a response id, or the active response). */
  | { readonly kind: 'cancel', readonly responseId?: string }
  /** The feed may have dropped messages (a reconnect): re-read the log from your cursor. */
  | { readonly kind: 'resync' }

export interface LiveFeed {
  /** Starts delivering the conversation's live messages to `listener`; resolves once subscribed. */
  subscribe (conversationId: string, listener: (message: LiveMessage) => void): Promise<() => Promise<void>>
  /** Asks whichever instance generates `responseId` (or the active response) to cancel it. */
  publishCancel (conversationId: string, responseId?: string): Promise<void>
}

export type LeaseGrant =
  | {
    readonly granted: true
    readonly fence: number
    readonly orphan?: { readonly responseId: string, readonly items: Item[] }
    /** With `{ items: true }`: the conversation's items, oldest first, as taken with the lease. */
    readonly items?: Item[]
  }
  /**
   * `idle`: the holder has no response active now — its turn is between responses (server-side
   * tools running) or about to release the lease, which a client that saw response.done may race.
   */
  | { readonly granted: false, readonly holderResponseId: string, readonly idle: boolean }

export interface AcquireOptions {
  /**
   * A grant also carries the conversation's items, read in the same atomic step: exactly what
   * `snapshot().items` would have been then. Like a snapshot, it refreshes the idle TTL. Saves
   * the round trip of a snapshot after the lease.
   */
  readonly items?: boolean
}

export interface LeaseStore {
  /**
   * Takes the conversation's lease for `responseId` for `ttlMs`, with a new fencing token, unless
   * someone holds it. `orphan`: a response was active without a lease (its instance died); the
   * new holder must end it (items given, still in progress) before anything else. Rejects with
   * GW_ERR_CONVERSATION_NOT_FOUND for an unknown or expired conversation.
   */
  acquire (conversationId: string, owner: string, responseId: string, ttlMs: number, options?: AcquireOptions): Promise<LeaseGrant>
  /** Extends the lease if `fence` still holds it; false when it was lost. */
  refresh (conversationId: string, fence: number, ttlMs: number): Promise<boolean>
  /** Drops the lease if `fence` still holds it. */
  release (conversationId: string, fence: number): Promise<void>
}

/** Everything a gateway needs from its backend. */
export interface Backend {
  readonly kind: 'memory' | 'redis' | 'redis-cluster'
  readonly conversations: ConversationStore
  readonly live: LiveFeed
  readonly leases: LeaseStore
  /** Per-key rate limits and socket slots, shared like the conversations. */
  readonly limits: RateLimitStore
  /** Token usage per tenant per day (usage-store.ts). */
  readonly usage: UsageStore
  /** Whether the backend can serve requests now (for /readyz). */
  ready (): Promise<boolean>
  close (): Promise<void>
}

/** The event_id of the log entry `seq` of epoch `epoch`: a cursor a client can resume from. */
export function eventId (epoch: string, seq: number): string {
  return `ev_${epoch}_${seq}`
}

/** The parts of a cursor made by `eventId`, or undefined for any other string. */
export function parseEventId (id: string): { epoch: string, seq: number } | undefined {
  const match = /^ev_([a-z0-9]+)_(\d{1,15})$/.exec(id)
  return match === null ? undefined : { epoch: match[1] ?? '', seq: Number(match[2]) }
}

/** Puts `"event_id":"…"` first in a serialised event object (the stores' one stamping rule). */
export function stampEvent (json: string, epoch: string, seq: number, previousItemId: string | null | undefined): string {
  const body = previousItemId === undefined
    ? json
    : json.replace(PREVIOUS_ITEM_MARKER, () => previousItemId === null ? 'null' : `"${previousItemId}"`)
  return `{"event_id":"${eventId(epoch, seq)}",${body.slice(1)}`
}
