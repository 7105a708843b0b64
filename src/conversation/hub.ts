/**
 * This instance's view of its live conversations: one live-feed subscription per conversation,
 * shared by every local socket attached to it and by every response generated here, so events
 * fan out to all local sockets and a cancel from any instance reaches the response where it runs.
 */
import { deviceAttached, deviceDetached } from '../diagnostics.js'
import { gatewayError, type GatewayError } from '../errors.js'
import type { Log } from '../logger.js'
import type { AppendResult, LiveFeed, LiveMessage } from '../store/conversation-store.js'

/** A local socket attached to a conversation. */
export interface HubMember {
  deliver (firstSeq: number, events: readonly string[]): void
  resync (): void
  /** Degraded mode (store down): a batch of events not yet in the log, JSON without event_id. */
  deliverUncommitted (events: readonly string[], batchId: string): void
  hold (): void
  /** Ends a hold; a member that was shown batch `batchId` skips its committed range. */
  release (skip?: { firstSeq: number, lastSeq: number, batchId: string }): void
}

/** A response generated on this instance. */
export interface HubRun {
  readonly responseId: string
  /** `clientCancelled`: a client asked, on any instance. `cause`: the gateway had to stop it (it ends failed). */
  abort (clientCancelled: boolean, cause?: GatewayError): void
}

interface Hub {
  readonly members: Set<HubMember>
  /** Keyed by the run itself: a turn's current response id changes with each follow-up. */
  readonly runs: Set<HubRun>
  unsubscribe?: () => Promise<void>
  subscribing?: Promise<void>
}

export class ConversationHubs {
  readonly #live: LiveFeed
  readonly #log: Log
  readonly #hubs = new Map<string, Hub>()
  readonly #running = new Set<Promise<void>>()

  constructor (live: LiveFeed, log: Log) {
    this.#live = live
    this.#log = log
  }

  /** Attaches a member; resolves once the live feed is subscribed (nothing after it is missed). */
  async join (conversationId: string, member: HubMember): Promise<void> {
    for (;;) {
      const hub = await this.#open(conversationId)
      // The hub may have been closed while we waited for its subscription: open a fresh one.
      if (this.#hubs.get(conversationId) !== hub) continue
      hub.members.add(member)
      if (deviceAttached.hasSubscribers) deviceAttached.publish(conversationId)
      return
    }
  }

  leave (conversationId: string, member: HubMember): void {
    const hub = this.#hubs.get(conversationId)
    if (hub?.members.delete(member) === true && deviceDetached.hasSubscribers) deviceDetached.publish(conversationId)
    this.#maybeClose(conversationId)
  }

  /** Registers a response generated here, so cancels (local or remote) reach it. */
  async addRun (conversationId: string, run: HubRun): Promise<void> {
    for (;;) {
      const hub = await this.#open(conversationId)
      if (this.#hubs.get(conversationId) !== hub) continue
      hub.runs.add(run)
      return
    }
  }

  removeRun (conversationId: string, run: HubRun): void {
    this.#hubs.get(conversationId)?.runs.delete(run)
    this.#maybeClose(conversationId)
  }

  /** The response generated here for this conversation, if any. */
  localRun (conversationId: string, responseId?: string): HubRun | undefined {
    const runs = this.#hubs.get(conversationId)?.runs
    if (runs === undefined) return undefined
    for (const run of runs) if (responseId === undefined || run.responseId === responseId) return run
    return undefined
  }

  /** Hands a local commit to local members at once (the feed's copy is then a duplicate they drop). */
  deliverLocal (conversationId: string, result: AppendResult): void {
    for (const member of this.#hubs.get(conversationId)?.members ?? []) member.deliver(result.firstSeq, result.events)
  }

  /** Shows events the store could not take yet to every local member. */
  deliverUncommitted (conversationId: string, events: readonly string[], batchId: string): void {
    for (const member of this.#hubs.get(conversationId)?.members ?? []) member.deliverUncommitted(events, batchId)
  }

  holdLocal (conversationId: string): void {
    for (const member of this.#hubs.get(conversationId)?.members ?? []) member.hold()
  }

  releaseLocal (conversationId: string, skip?: { firstSeq: number, lastSeq: number, batchId: string }): void {
    for (const member of this.#hubs.get(conversationId)?.members ?? []) member.release(skip)
  }

  /** Keeps a response's whole life (generation, writes, lease release) for `drain`. */
  track (running: Promise<void>): void {
    const settled = running.catch((err: unknown) => this.#log.error({ err }, 'response run crashed'))
    this.#running.add(settled)
    settled.finally(() => this.#running.delete(settled)).catch(() => {})
  }

  /**
   * Shutdown: lets responses generated here finish for up to `graceMs` (their clients resume on
   * other instances and see the tail through the log), then stops the rest so each still ends
   * with a response.done in the log.
   */
  async drain (graceMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs).unref() })
    await Promise.race([Promise.allSettled([...this.#running]), grace])
    clearTimeout(timer)
    const cause = gatewayError('GW_ERR_SERVER_SHUTDOWN', [graceMs])
    for (const hub of this.#hubs.values()) for (const run of hub.runs) run.abort(false, cause)
    await Promise.allSettled([...this.#running])
  }

  /** Unsubscribes everything (shutdown). */
  async close (): Promise<void> {
    const hubs = [...this.#hubs.values()]
    this.#hubs.clear()
    await Promise.allSettled(hubs.map(async (hub) => hub.unsubscribe?.()))
  }

  async #open (conversationId: string): Promise<Hub> {
    let hub = this.#hubs.get(conversationId)
    if (hub === undefined) {
      const created: Hub = { members: new Set(), runs: new Set() }
      hub = created
      this.#hubs.set(conversationId, created)
      created.subscribing = this.#live.subscribe(conversationId, (message) => this.#dispatch(created, message))
        .then((unsubscribe) => { created.unsubscribe = unsubscribe })
        .catch((err: unknown) => {
          if (this.#hubs.get(conversationId) === created) this.#hubs.delete(conversationId)
          throw err
        })
    }
    await hub.subscribing
    return hub
  }

  #dispatch (hub: Hub, message: LiveMessage): void {
    switch (message.kind) {
      case 'events':
        for (const member of hub.members) member.deliver(message.firstSeq, message.events)
        break
      case 'resync':
        for (const member of hub.members) member.resync()
        break
      case 'cancel':
        for (const run of hub.runs) {
          if (message.responseId === undefined || message.responseId === run.responseId) run.abort(true)
        }
        break
    }
  }

  #maybeClose (conversationId: string): void {
    const hub = this.#hubs.get(conversationId)
    if (hub === undefined || hub.members.size > 0 || hub.runs.size > 0) return
    this.#hubs.delete(conversationId)
    hub.subscribing?.then(async () => hub.unsubscribe?.())
      .catch((err: unknown) => this.#log.warn({ err, conversationId }, 'live feed unsubscribe failed'))
  }
}
