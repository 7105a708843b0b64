/**
 * The shared backend: conversations, event logs, live feeds and leases in Redis or Redis
 * Cluster, so any instance can serve any conversation. Every mutation is one Lua script
 * (redis-scripts.ts); the live feed is classic pub/sub on a dedicated subscriber connection.
 *
 * Failure timing (Redis down or unreachable):
 * - A call first waits for the connection to be ready, at most READY_WAIT_MS (2 s), then
 *   rejects with GW_ERR_STORE_UNAVAILABLE without sending anything.
 * - A command that raced a disconnect sits in ioredis's queue until maxRetriesPerRequest (2)
 *   reconnect attempts have failed: with the backoff below, about 0.3–3 s.
 * - A command already sent when the connection dropped gets COMMAND_TIMEOUT_MS (5 s). Its
 *   outcome is then unknown: ioredis re-sends it after a reconnect, so it may still apply.
 * - Reconnects go on forever: 100 ms, 200 ms, 400 ms, … capped at 1 s; connect timeout 2 s.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { observeStoreError } from '../diagnostics.js'
import { gatewayError, isGatewayError, type GatewayError } from '../errors.js'
import { createRedisRateLimits } from '../limits/redis-rate-limits.js'
import type { Log } from '../logger.js'
import type { Item } from '../protocol/events.js'
import { createRedisUsage } from './usage-redis.js'
import {
  stampEvent, type AppendRequest, type AppendResult, type Backend, type ConversationStore, type LeaseGrant,
  type LeaseStore, type LiveFeed, type LiveMessage, type LogEntry, type Snapshot
} from './conversation-store.js'
import {
  ACQUIRE_SCRIPT, APPEND_EVENTS_SCRIPT, APPEND_SCRIPT, CREATE_SCRIPT, PUBLISH_SCRIPT, READ_LOG_SCRIPT,
  REFRESH_SCRIPT, RELEASE_SCRIPT, SNAPSHOT_SCRIPT, scriptKeyCount
} from './redis-scripts.js'

export interface RedisBackendOptions {
  /** A single node, e.g. `redis://127.0.0.1:6379`. Ignored when `clusterNodes` is given. */
  readonly url?: string
  /** Seed nodes of a Redis Cluster. */
  readonly clusterNodes?: ReadonlyArray<{ readonly host: string, readonly port: number }>
  /** Prepended to every key and channel, e.g. `tokenwire:`. Must not contain `{` or `}`. */
  readonly keyPrefix: string
  /** A conversation untouched this long expires, in ms. */
  readonly ttlMs: number
  /** Events kept per conversation log (EVENT_LOG_MAX_EVENTS). */
  readonly maxLogEvents: number
  /** Most items one conversation may hold. */
  readonly maxItems: number
  readonly log: Log
  /** Monotonic clock in ms, for tests (default performance.now). */
  readonly now?: () => number
}

const READY_WAIT_MS = 2_000
const COMMAND_TIMEOUT_MS = 5_000
const PING_TIMEOUT_MS = 500
const QUIT_TIMEOUT_MS = 1_000
/** Failed reconnects to one cluster node before the subscriber moves to another node. */
const SUBSCRIBER_NODE_ATTEMPTS = 3
/** An append refreshes every key's TTL only if this instance has not for ttl / this long. */
const TTL_REFRESH_DIVISOR = 8
/** Conversations whose last TTL refresh is remembered; the ones beyond it refresh again. */
const MAX_REFRESH_ENTRIES = 10_000

const backoff = (times: number): number => Math.min(100 * 2 ** Math.max(0, times - 1), 1_000)

const connectionOptions = {
  maxRetriesPerRequest: 2,
  enableOfflineQueue: true,
  connectTimeout: 2_000,
  commandTimeout: COMMAND_TIMEOUT_MS,
  retryStrategy: backoff
} satisfies RedisOptions

/** The keys and the live channel of one conversation; all share the hash tag `{c:<id>}`. */
export function conversationKeys (keyPrefix: string, conversationId: string) {
  const base = `${keyPrefix}{c:${conversationId}}`
  return {
    meta: `${base}:meta`,
    order: `${base}:order`,
    items: `${base}:items`,
    activeItems: `${base}:active_items`,
    events: `${base}:events`,
    lease: `${base}:lease`,
    live: `${base}:live`
  }
}

type Arg = string | number
type Client = Redis | Cluster

/** The commands `defineCommand` adds (EVALSHA, falling back to EVAL on NOSCRIPT). */
interface ScriptCommands {
  twCreate (...args: Arg[]): Promise<unknown>
  twSnapshot (...args: Arg[]): Promise<unknown>
  twAppend (...args: Arg[]): Promise<unknown>
  twAppendEvents (...args: Arg[]): Promise<unknown>
  twReadLog (...args: Arg[]): Promise<unknown>
  twAcquire (...args: Arg[]): Promise<unknown>
  twRefresh (...args: Arg[]): Promise<unknown>
  twRelease (...args: Arg[]): Promise<unknown>
  twPublish (...args: Arg[]): Promise<unknown>
}

function defineScripts (client: Client): Client & ScriptCommands {
  const scripts = {
    twCreate: [CREATE_SCRIPT, scriptKeyCount.create],
    twSnapshot: [SNAPSHOT_SCRIPT, scriptKeyCount.snapshot],
    twAppend: [APPEND_SCRIPT, scriptKeyCount.append],
    twAppendEvents: [APPEND_EVENTS_SCRIPT, scriptKeyCount.appendEvents],
    twReadLog: [READ_LOG_SCRIPT, scriptKeyCount.readLog],
    twAcquire: [ACQUIRE_SCRIPT, scriptKeyCount.acquire],
    twRefresh: [REFRESH_SCRIPT, scriptKeyCount.refresh],
    twRelease: [RELEASE_SCRIPT, scriptKeyCount.release],
    twPublish: [PUBLISH_SCRIPT, scriptKeyCount.publish]
  } as const
  for (const [name, [lua, numberOfKeys]] of Object.entries(scripts)) client.defineCommand(name, { lua, numberOfKeys })
  return client as Client & ScriptCommands
}

/** Replies Redis gives while it cannot serve (failover, loading, cluster reconfiguring). */
const TRANSIENT_REPLY = /^(CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN|READONLY|BUSY|NOREPLICAS|MOVED|ASK)\b/

function isReplyError (err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError'
}

function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Resolves once `client` is ready, or rejects GW_ERR_STORE_UNAVAILABLE after `ms`. */
function whenReady (client: Client, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise((resolve, reject) => {
    const onReady = (): void => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      client.off('ready', onReady)
      reject(gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: new Error(`Redis not ready (${client.status}) after ${ms} ms`), retryable: true }))
    }, ms)
    client.once('ready', onReady)
  })
}

async function shut (client: Client): Promise<void> {
  try {
    await withTimeout(client.quit(), QUIT_TIMEOUT_MS)
  } catch {
    // Already closed or unreachable: disconnect below.
  }
  client.disconnect()
}

function parseLiveMessage (message: string): LiveMessage | undefined {
  if (message.startsWith('e|')) {
    const lines = message.split('\n')
    const firstSeq = Number((lines[0] ?? '').slice(2))
    return Number.isInteger(firstSeq) ? { kind: 'events', firstSeq, events: lines.slice(1) } : undefined
  }
  if (message.startsWith('c|')) {
    const responseId = message.slice(2)
    return responseId === '' ? { kind: 'cancel' } : { kind: 'cancel', responseId }
  }
  return undefined
}

type Listener = (message: LiveMessage) => void
interface Channel { readonly listeners: Set<Listener>, readonly subscribed: Promise<void> }

/**
 * The live feed's subscriber connection. Subscriptions are ref-counted per channel. After the
 * connection comes back (ioredis re-subscribes by itself; on a cluster, after a move to
 * another node) every listener gets `resync`, once the re-subscription is acknowledged, so a
 * log read that follows cannot miss an event.
 */
class Subscriber {
  readonly #channels = new Map<string, Channel>()
  readonly #connect: (previous: Redis | undefined) => Redis
  readonly #log: Log
  #connection: Redis
  /** The connection was lost (or replaced) since the last ready: resync on the next ready. */
  #dropped = false
  #closed = false

  constructor (connect: (previous: Redis | undefined) => Redis, log: Log) {
    this.#connect = connect
    this.#log = log
    this.#connection = this.#attach(connect(undefined))
  }

  /** Resolves once the subscriber connection is up; rejects after `ms`. */
  async whenHealthy (ms: number): Promise<void> {
    await whenReady(this.#connection, ms)
  }

  #attach (connection: Redis): Redis {
    connection.on('message', (channel: string, message: string) => this.#dispatch(connection, channel, message))
    connection.on('error', (err: Error) => this.#log.debug({ err: err.message }, 'redis subscriber connection error'))
    connection.on('close', () => {
      if (this.#closed || connection !== this.#connection) return
      if (!this.#dropped) this.#log.warn({}, 'redis subscriber connection lost; live messages may be missed until it is back')
      this.#dropped = true
    })
    connection.on('ready', () => {
      if (connection !== this.#connection || !this.#dropped) return
      this.#dropped = false
      this.#resubscribe(connection).catch((err: unknown) => {
        this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, 'redis re-subscribe failed')
      })
    })
    connection.on('end', () => {
      // Only a cluster subscriber gives up on a node (its retryStrategy returns null): move on.
      if (this.#closed || connection !== this.#connection) return
      this.#dropped = true
      this.#connection = this.#attach(this.#connect(connection))
    })
    return connection
  }

  async #resubscribe (connection: Redis): Promise<void> {
    const channels = [...this.#channels.keys()]
    // Re-subscribing to a channel ioredis already re-subscribed is harmless; the reply proves
    // every subscription is active again.
    if (channels.length > 0) await connection.subscribe(...channels)
    this.#log.info({ channels: channels.length }, 'redis subscriber connection restored')
    for (const channel of channels) {
      for (const listener of this.#channels.get(channel)?.listeners ?? []) this.#deliver(listener, { kind: 'resync' })
    }
  }

  #dispatch (connection: Redis, channel: string, raw: string): void {
    const entry = this.#channels.get(channel)
    if (entry === undefined) {
      // Left over from an unsubscribe that failed while Redis was away.
      connection.unsubscribe(channel).catch(() => {})
      return
    }
    const message = parseLiveMessage(raw)
    if (message === undefined) {
      this.#log.warn({ channel }, 'ignoring a malformed live message')
      return
    }
    for (const listener of entry.listeners) this.#deliver(listener, message)
  }

  #deliver (listener: Listener, message: LiveMessage): void {
    try {
      listener(message)
    } catch (err) {
      this.#log.error({ err: err instanceof Error ? err.message : String(err) }, 'live listener threw')
    }
  }

  async subscribe (channel: string, listener: Listener): Promise<() => Promise<void>> {
    if (this.#closed) throw gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: new Error('backend closed') })
    let entry = this.#channels.get(channel)
    if (entry === undefined) {
      const connection = this.#connection
      const subscribed = whenReady(connection, READY_WAIT_MS).then(async () => { await connection.subscribe(channel) })
      entry = { listeners: new Set(), subscribed }
      this.#channels.set(channel, entry)
    }
    const own: Listener = (message) => listener(message)
    const joined = entry
    joined.listeners.add(own)
    try {
      await joined.subscribed
    } catch (err) {
      joined.listeners.delete(own)
      if (this.#channels.get(channel) === joined) this.#channels.delete(channel)
      throw toStoreError(err, this.#log)
    }
    let done = false
    return async () => {
      if (done) return
      done = true
      joined.listeners.delete(own)
      if (joined.listeners.size > 0 || this.#channels.get(channel) !== joined) return
      this.#channels.delete(channel)
      if (this.#closed) return
      // A failure here leaves a subscription Redis-side; #dispatch drops it on its next message.
      await this.#connection.unsubscribe(channel).catch(() => {})
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#channels.clear()
    await shut(this.#connection)
  }
}

/** Maps a script or connection failure onto the error registry. */
function toStoreError (err: unknown, log: Log, context: { conversationId?: string, fence?: number, maxItems?: number } = {}): GatewayError {
  if (isGatewayError(err)) return err
  if (isReplyError(err)) {
    const [, code = '', arg = ''] = /^TOKENWIRE (\w+)(?: (.*))?$/s.exec(err.message) ?? []
    switch (code) {
      case 'NOTFOUND': return gatewayError('GW_ERR_CONVERSATION_NOT_FOUND', [context.conversationId ?? ''])
      case 'FENCED': return gatewayError('GW_ERR_LEASE_LOST', [context.fence ?? ''])
      case 'DUPLICATE': return gatewayError('GW_ERR_ITEM_DUPLICATE_ID', [arg])
      case 'PREVNOTFOUND': return gatewayError('GW_ERR_ITEM_NOT_FOUND', [arg], { param: 'previous_item_id' })
      case 'ITEMNOTFOUND': return gatewayError('GW_ERR_ITEM_NOT_FOUND', [arg], { param: 'item_id' })
      case 'FULL': return gatewayError('GW_ERR_CONVERSATION_FULL', [context.maxItems ?? ''])
    }
    if (!TRANSIENT_REPLY.test(err.message)) {
      // A script or command bug, not an outage.
      log.error({ err: err.message }, 'unexpected Redis reply error')
      return gatewayError('GW_ERR_SERVER_INTERNAL', [], { cause: err })
    }
  }
  return gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: err, retryable: true })
}

type SnapshotReply = [string, number, number, string, number, number, string[], string[]]
/** `<firstSeq>|<epoch>|<previous>`, previous '' (no insert), '^' (went first) or '=' .. id. */
type AppendReply = string
type ReadLogReply = Array<[string, string[]]>
type AcquireReply = [0, string, number] | [1, number, string, string[], string[]?]

/**
 * When this instance last reset the TTL of each conversation's keys, so appends (one per token
 * batch) need not: an append refreshes them only when the last refresh is older than
 * `everyMs`. Skipping is safe because every refresh sets each key to live `ttlMs` from a moment
 * no earlier than the time recorded here, the keys an append creates get their TTL in that
 * append (both append scripts), and `everyMs` is a small part of `ttlMs`: a conversation in use
 * keeps at least 7/8 of its TTL. Forgetting an entry (bounded map) only costs an early refresh.
 */
class RefreshTimes {
  readonly #at = new Map<string, number>()
  readonly #everyMs: number

  constructor (everyMs: number) {
    this.#everyMs = everyMs
  }

  due (conversationId: string, now: number): boolean {
    const at = this.#at.get(conversationId)
    return at === undefined || now - at >= this.#everyMs
  }

  /** Records a refresh whose request was sent at `sentAt` (it ran no earlier). */
  refreshed (conversationId: string, sentAt: number): void {
    const previous = this.#at.get(conversationId)
    if (previous !== undefined && previous >= sentAt) return
    this.#at.delete(conversationId)
    this.#at.set(conversationId, sentAt)
    // Oldest first (roughly: replies may come back out of order): drop what is due anyway, and
    // anything beyond the bound.
    for (const [id, at] of this.#at) {
      if (this.#at.size <= MAX_REFRESH_ENTRIES && sentAt - at < this.#everyMs) break
      this.#at.delete(id)
    }
  }
}

export function createRedisBackend (options: RedisBackendOptions): Backend {
  if (/[{}]/.test(options.keyPrefix)) throw new TypeError('keyPrefix must not contain { or }: it would break the hash tag')
  const log = options.log.child({ component: 'redis-store' })
  const ttlMs = Math.max(1, Math.ceil(options.ttlMs))
  const now = options.now ?? (() => performance.now())
  const refreshTimes = new RefreshTimes(ttlMs / TTL_REFRESH_DIVISOR)
  const clusterNodes = options.clusterNodes ?? []
  const isCluster = clusterNodes.length > 0
  if (!isCluster && options.url === undefined) throw new TypeError('createRedisBackend needs a url or clusterNodes')

  const client = defineScripts(isCluster
    ? new Cluster(clusterNodes.map(({ host, port }) => ({ host, port })), {
      enableOfflineQueue: true,
      clusterRetryStrategy: backoff,
      redisOptions: { ...connectionOptions }
    })
    : new Redis(options.url ?? '', { ...connectionOptions }))

  let lostSince: number | undefined
  client.on('error', (err: Error) => {
    if (lostSince === undefined) log.warn({ err: err.message }, 'redis connection error')
    lostSince ??= Date.now()
  })
  client.on('ready', () => {
    if (lostSince !== undefined) log.info({ downMs: Date.now() - lostSince }, 'redis connection restored')
    lostSince = undefined
  })

  let nextNode = 0
  const connectSubscriber = (previous: Redis | undefined): Redis => {
    if (!isCluster) return (client as Redis).duplicate()
    // Any cluster node relays classic PUBLISH; prefer the nodes the cluster knows now, and a
    // node other than the one just given up on.
    const known = (client as Cluster).nodes('all').map(({ options: { host, port } }) => ({ host: host ?? '', port: port ?? 0 }))
    const candidates = known.filter(({ host, port }) => host !== '' && port > 0)
    if (candidates.length === 0) candidates.push(...clusterNodes)
    const pick = () => candidates[nextNode++ % candidates.length] ?? { host: '127.0.0.1', port: 0 }
    let node = pick()
    if (previous !== undefined && candidates.length > 1 && node.host === previous.options.host && node.port === previous.options.port) node = pick()
    return new Redis({
      ...connectionOptions,
      host: node.host,
      port: node.port,
      retryStrategy: (times) => times > SUBSCRIBER_NODE_ATTEMPTS ? null : backoff(times)
    })
  }
  const subscriber = new Subscriber(connectSubscriber, log)
  let closed = false

  /** Runs one store call: waits (bounded) for the connection, maps failures. */
  async function run<T> (call: () => Promise<unknown>, context: Parameters<typeof toStoreError>[2] = {}): Promise<T> {
    if (closed) throw gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: new Error('backend closed') })
    try {
      await whenReady(client, READY_WAIT_MS)
      return await call() as T
    } catch (err) {
      throw observeStoreError(toStoreError(err, log, context))
    }
  }

  const keysOf = (conversationId: string) => conversationKeys(options.keyPrefix, conversationId)
  const sixKeys = (k: ReturnType<typeof keysOf>) => [k.meta, k.order, k.items, k.activeItems, k.events, k.lease]
  const appendKeys = (k: ReturnType<typeof keysOf>) => [k.meta, k.order, k.items, k.activeItems, k.events]

  const conversations: ConversationStore = {
    async create (conversationId, tenant, epoch) {
      const sentAt = now()
      await run(() => client.twCreate(...sixKeys(keysOf(conversationId)), tenant, epoch, ttlMs), { conversationId })
      // Only meta exists now, with a fresh TTL.
      refreshTimes.refreshed(conversationId, sentAt)
    },

    async snapshot (conversationId, tenant): Promise<Snapshot | undefined> {
      const sentAt = now()
      const reply = await run<SnapshotReply | null>(() => client.twSnapshot(...sixKeys(keysOf(conversationId)), tenant, ttlMs), { conversationId })
      if (reply === null) return undefined
      refreshTimes.refreshed(conversationId, sentAt)
      const [epoch, lastSeq, firstSeq, activeId, activeSeq, leased, itemsJson, activeIds] = reply
      const items = itemsJson.map((json) => JSON.parse(json) as Item)
      const inActive = new Set(activeIds)
      return {
        epoch,
        lastSeq,
        firstSeq,
        items,
        ...(activeId === ''
          ? {}
          : { active: { responseId: activeId, seq: activeSeq, itemIds: items.filter((item) => inActive.has(item.id)).map((item) => item.id) } }),
        leased: leased === 1
      }
    },

    async append (conversationId, request: AppendRequest): Promise<AppendResult> {
      const k = keysOf(conversationId)
      const ops = request.ops ?? []
      const sentAt = now()
      const refresh = refreshTimes.due(conversationId, sentAt)
      const args: Arg[] = [
        ttlMs, options.maxLogEvents, request.fence === undefined ? '' : String(request.fence), k.live, request.id ?? '',
        refresh ? '1' : '0'
      ]
      // A streamed token (events, at most a replace of its item) takes the lean script.
      const lean = request.active === undefined && ops.every((op) => op.op === 'replace')
      if (lean) {
        args.push(ops.length)
        for (const op of ops) args.push(op.item.id, JSON.stringify(op.item))
      } else {
        args.push(options.maxItems, request.active?.state ?? '', request.active?.responseId ?? '', ops.length)
        for (const op of ops) {
          if (op.op === 'insert') {
            const where = op.after === undefined ? '$' : op.after === null ? '^' : `>${op.after}`
            args.push('insert', op.item.id, where, JSON.stringify(op.item))
          } else if (op.op === 'replace') {
            args.push('replace', op.item.id, '', JSON.stringify(op.item))
          } else {
            args.push('delete', op.itemId, '', '')
          }
        }
      }
      // The scripts put `{"event_id":"…",` where the opening brace was.
      for (const json of request.events) args.push(json.slice(1))
      const reply = await run<AppendReply>(
        () => lean ? client.twAppendEvents(...appendKeys(k), ...args) : client.twAppend(...appendKeys(k), ...args),
        { conversationId, ...(request.fence === undefined ? {} : { fence: request.fence }), maxItems: options.maxItems }
      )
      if (refresh) refreshTimes.refreshed(conversationId, sentAt)
      const seqEnd = reply.indexOf('|')
      const epochEnd = reply.indexOf('|', seqEnd + 1)
      const firstSeq = Number(reply.slice(0, seqEnd))
      const epoch = reply.slice(seqEnd + 1, epochEnd)
      const previous = reply.slice(epochEnd + 1)
      const previousItemId = previous === '' ? undefined : previous === '^' ? null : previous.slice(1)
      const events = request.events.map((json, i) => stampEvent(json, epoch, firstSeq + i, previousItemId))
      return { firstSeq, events, ...(previousItemId === undefined ? {} : { previousItemId }) }
    },

    async readLog (conversationId, afterSeq): Promise<LogEntry[]> {
      const k = keysOf(conversationId)
      const after = Math.max(0, Math.floor(afterSeq))
      const reply = await run<ReadLogReply>(() => client.twReadLog(k.meta, k.events, after), { conversationId })
      return reply.map(([id, fields]) => ({ seq: Number(id.slice(id.indexOf('-') + 1)), event: fields[1] ?? '' }))
    }
  }

  const live: LiveFeed = {
    async subscribe (conversationId, listener) {
      return await subscriber.subscribe(keysOf(conversationId).live, listener)
    },
    async publishCancel (conversationId, responseId) {
      const k = keysOf(conversationId)
      await run(() => client.twPublish(k.meta, k.live, `c|${responseId ?? ''}`), { conversationId })
    }
  }

  const leases: LeaseStore = {
    async acquire (conversationId, owner, responseId, leaseTtlMs, acquireOptions = {}): Promise<LeaseGrant> {
      const k = keysOf(conversationId)
      const withItems = acquireOptions.items === true
      const sentAt = now()
      const reply = await run<AcquireReply>(
        () => client.twAcquire(
          k.meta, k.lease, k.order, k.items, k.activeItems, k.events,
          owner, responseId, Math.max(1, Math.ceil(leaseTtlMs)), withItems ? '1' : '0', ttlMs
        ),
        { conversationId }
      )
      if (reply[0] === 0) return { granted: false, holderResponseId: reply[1], idle: reply[2] === 1 }
      const [, fence, orphanId, open, itemsJson] = reply
      // A grant that read the items refreshed every key's TTL, like a snapshot.
      if (itemsJson !== undefined) refreshTimes.refreshed(conversationId, sentAt)
      return {
        granted: true,
        fence,
        ...(orphanId === '' ? {} : { orphan: { responseId: orphanId, items: open.map((json) => JSON.parse(json) as Item) } }),
        ...(itemsJson === undefined ? {} : { items: itemsJson.map((json) => JSON.parse(json) as Item) })
      }
    },
    async refresh (conversationId, fence, leaseTtlMs) {
      const k = keysOf(conversationId)
      const reply = await run<number>(() => client.twRefresh(k.lease, k.meta, String(fence), Math.max(1, Math.ceil(leaseTtlMs))), { conversationId, fence })
      return reply === 1
    },
    async release (conversationId, fence) {
      await run(() => client.twRelease(keysOf(conversationId).lease, String(fence)), { conversationId, fence })
    }
  }

  return {
    kind: isCluster ? 'redis-cluster' : 'redis',
    conversations,
    live,
    leases,
    limits: createRedisRateLimits({ client, keyPrefix: options.keyPrefix, run: async (call) => await run(call) }),
    usage: createRedisUsage({ client, keyPrefix: options.keyPrefix }),
    async ready () {
      if (closed) return false
      try {
        // The live feed counts too: a dead subscriber with a live PING is Centrifugo #1189.
        await withTimeout(Promise.all([client.ping(), subscriber.whenHealthy(PING_TIMEOUT_MS)]), PING_TIMEOUT_MS)
        return true
      } catch {
        return false
      }
    },
    async close () {
      if (closed) return
      closed = true
      await Promise.all([subscriber.close(), shut(client)])
    }
  }
}
