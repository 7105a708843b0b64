/**
 * Responses that join a conversation, for every session of this instance: takes the
 * conversation's lease (ending a dead instance's response first), writes the response's events
 * to the log under its fence, refreshes the lease while it runs and releases it at the end.
 */
import type { ConversationHubs } from '../conversation/hub.js'
import { ConversationWriter } from '../conversation/writer.js'
import { responseReserve } from '../diagnostics.js'
import { gatewayError, isGatewayError, type GatewayError } from '../errors.js'
import { newId } from '../ids.js'
import type { Log } from '../logger.js'
import type { Item, OutgoingEvent, ResponseResource } from '../protocol/events.js'
import type { Backend } from '../store/conversation-store.js'
import { closingEvents, type ResponseRun, type ResponseSink } from './response-run.js'

export interface ConversationResponsesOptions {
  readonly backend: Backend
  readonly hubs: ConversationHubs
  /** Names this instance in leases. */
  readonly instanceId: string
  readonly leaseTtlMs: number
  readonly batchLingerMs: number
}

/** A response's right to write: its fence, and the sink its events go through. */
export interface ResponseSlot {
  readonly fence: number
  readonly sink: ResponseSink
  /**
   * With `reserve(…, { items: true })`: the conversation's items, oldest first, as of taking the
   * lease (and ending a dead instance's response, if there was one), read in the same round trip.
   */
  readonly items: Item[] | undefined
  /**
   * Runs `run` to its end in the background (the hub tracks it for shutdown); resolves when
   * started. After each response, `next` may return a follow-up response of the same turn (after
   * server-side tools ran); the lease is held until the turn ends.
   */
  start (run: ResponseRun, log: Log, onEnd: () => void, next?: FollowUp): Promise<void>
  /** Gives the lease back without running anything (the request could not be built). */
  abandon (): Promise<void>
  /** Resolves once everything sent through `sink` is in the store (before reading the history back). */
  flush (): Promise<void>
}

/** Given the response that just ended, the next response of the turn, if any. */
export type FollowUp = (response: ResponseResource, signal: AbortSignal) => Promise<ResponseRun | undefined>

/**
 * How long `reserve` waits, at most, for a lease about to be freed: another instance ending a dead
 * instance's response, or a holder with no response active (done, or between a turn's responses).
 */
const RECOVERY_WAIT_ATTEMPTS = 20
const RECOVERY_WAIT_MS = 25

export class ConversationResponses {
  readonly #options: ConversationResponsesOptions

  constructor (options: ConversationResponsesOptions) {
    this.#options = options
  }

  /**
   * Takes the conversation's lease for `responseId`, or rejects with GW_ERR_RESPONSE_ACTIVE
   * naming the response that holds it. A response left by a dead instance is ended first.
   * `items`: the slot also carries the conversation's items, read with the lease.
   */
  async reserve (conversationId: string, responseId: string, log: Log, options: { readonly items?: boolean } = {}): Promise<ResponseSlot> {
    const { backend, instanceId, leaseTtlMs } = this.#options
    if (responseReserve.hasSubscribers) responseReserve.publish(responseId)
    const acquireOptions = { items: options.items === true }
    let grant = await backend.leases.acquire(conversationId, instanceId, responseId, leaseTtlMs, acquireOptions)
    // Another instance may be ending a dead instance's response right now (one append), or the
    // holder's response is done and its lease about to be released (a client that saw
    // response.done may ask again at once): wait for either briefly instead of refusing.
    for (let attempt = 0; !grant.granted && (grant.idle || grant.holderResponseId.startsWith('recovery_')) && attempt < RECOVERY_WAIT_ATTEMPTS; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, RECOVERY_WAIT_MS))
      grant = await backend.leases.acquire(conversationId, instanceId, responseId, leaseTtlMs, acquireOptions)
    }
    if (!grant.granted) throw gatewayError('GW_ERR_RESPONSE_ACTIVE', [grant.holderResponseId])
    const { fence } = grant
    let items = grant.items
    if (grant.orphan !== undefined) {
      log.warn({ orphan: grant.orphan.responseId }, 'ending a response whose instance died')
      const ended = await this.#endOrphan(conversationId, grant.orphan, fence, log)
      // The items were read before that append: apply its replaces as the store did (an item
      // deleted meanwhile stays deleted), rather than paying a second read.
      if (items !== undefined) items = items.map((item) => structuredClone(ended.get(item.id)) ?? item)
    }
    // A write that fails for good stops this turn (and only this one).
    let turn: Turn | undefined
    const writer = this.#writer(conversationId, fence, log, (err) => turn?.abort(false, err))
    return {
      fence,
      items,
      sink: logSink(writer, responseId),
      start: async (run, runLog, onEnd, next) => {
        turn = new Turn(run)
        await this.#options.hubs.addRun(conversationId, turn)
        this.#options.hubs.track(this.#drive(conversationId, turn, writer, fence, runLog, next).finally(onEnd))
      },
      abandon: async () => { await backend.leases.release(conversationId, fence) },
      flush: async () => { await writer.flush() }
    }
  }

  /** Another instance's response is active without a lease: take over just long enough to end it. */
  recoverOrphan (conversationId: string, log: Log): void {
    const { backend, instanceId, leaseTtlMs } = this.#options
    backend.leases.acquire(conversationId, instanceId, newId('recovery'), leaseTtlMs).then(async (grant) => {
      if (!grant.granted) return
      try {
        if (grant.orphan !== undefined) {
          log.warn({ orphan: grant.orphan.responseId }, 'ending a response whose instance died')
          await this.#endOrphan(conversationId, grant.orphan, grant.fence, log)
        }
      } finally {
        await backend.leases.release(conversationId, grant.fence)
      }
    }).catch((err: unknown) => log.warn({ err }, 'orphan recovery failed'))
  }

  /** Runs a turn's responses to the end under the lease: refreshes it, stops the turn if it is lost. */
  async #drive (conversationId: string, turn: Turn, writer: ConversationWriter, fence: number, log: Log, next: FollowUp | undefined): Promise<void> {
    const { backend, hubs, leaseTtlMs } = this.#options
    const refresh = setInterval(() => {
      backend.leases.refresh(conversationId, fence, leaseTtlMs).then((held) => {
        if (!held) {
          log.warn({ fence }, 'lease lost; stopping the response')
          turn.abort(false, gatewayError('GW_ERR_LEASE_LOST', [fence]))
        }
      }, (err: unknown) => log.warn({ err }, 'lease refresh failed'))
    }, Math.max(50, Math.floor(leaseTtlMs / 3)))
    try {
      for (let run: ResponseRun | undefined = turn.current; run !== undefined;) {
        const response = await run.run()
        log.debug({ status: response.status, responseId: run.id }, 'response done')
        run = turn.stopped || next === undefined ? undefined : await next(response, turn.signal)
        if (run !== undefined) turn.continueWith(run)
      }
      await writer.flush()
    } catch (err) {
      log.warn({ err }, 'response could not be written')
    } finally {
      clearInterval(refresh)
      hubs.removeRun(conversationId, turn)
      await backend.leases.release(conversationId, fence).catch((err: unknown) => log.warn({ err }, 'lease release failed'))
    }
  }

  #writer (conversationId: string, fence: number, log: Log, stop: (err: GatewayError) => void = () => {}): ConversationWriter {
    const { backend, hubs, batchLingerMs } = this.#options
    return new ConversationWriter({
      store: backend.conversations,
      conversationId,
      fence,
      lingerMs: batchLingerMs,
      onCommitted: (result) => hubs.deliverLocal(conversationId, result),
      onUncommitted: (events, batchId) => hubs.deliverUncommitted(conversationId, events, batchId),
      holdLocal: () => hubs.holdLocal(conversationId),
      releaseLocal: (skip) => hubs.releaseLocal(conversationId, skip),
      onFailed: (err) => {
        log.warn({ err }, 'conversation write failed; stopping the response')
        stop(isGatewayError(err) ? err : gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: err }))
      }
    })
  }

  /**
   * Ends a response whose instance died: its open items end incomplete, then response.done.
   * Resolves the items it replaced, by id, once written.
   */
  async #endOrphan (conversationId: string, orphan: { responseId: string, items: Item[] }, fence: number, log: Log): Promise<Map<string, Item>> {
    const writer = this.#writer(conversationId, fence, log)
    const output = orphan.items.map((item) => ({ ...item, status: 'incomplete' as const }))
    const replaced = new Map<string, Item>()
    for (const [index, item] of output.entries()) {
      for (const event of closingEvents(orphan.responseId, item, index, true)) {
        if (event.type !== 'conversation.item.done') {
          writer.emit(JSON.stringify(event))
          continue
        }
        writer.emit(JSON.stringify(event), { op: 'replace', item })
        replaced.set(item.id, item)
      }
    }
    const done: OutgoingEvent = {
      type: 'response.done',
      response: {
        id: orphan.responseId,
        object: 'realtime.response',
        status: 'incomplete',
        status_details: { type: 'incomplete', error: { type: 'server_error', code: 'generator_lost' } },
        output,
        conversation_id: conversationId,
        output_modalities: ['text'],
        // Every response.done carries usage; what the dead instance used was never counted.
        usage: { total_tokens: 0, input_tokens: 0, output_tokens: 0 }
      }
    }
    writer.emit(JSON.stringify(done), undefined, { responseId: orphan.responseId, state: 'end' })
    await writer.flush()
    return replaced
  }
}

/** Events of a conversation response go to the log; response.created/done mark it active. */
function logSink (writer: ConversationWriter, responseId: string): ResponseSink {
  return {
    emit: (event, op) => {
      const active = event.type === 'response.created'
        ? { responseId, state: 'start' as const }
        : event.type === 'response.done' ? { responseId, state: 'end' as const } : undefined
      writer.emit(JSON.stringify(event), op, active)
    },
    touch: (item) => writer.touch(item)
  }
}

/**
 * One user turn: a response, and the follow-ups server-side tools lead to. Cancelling it stops
 * the current response and its tools, and no follow-up starts.
 */
class Turn {
  #current: ResponseRun
  readonly #controller = new AbortController()

  constructor (first: ResponseRun) {
    this.#current = first
  }

  get current (): ResponseRun {
    return this.#current
  }

  /** The response running now: what `response.cancel` with a response_id names. */
  get responseId (): string {
    return this.#current.id
  }

  /** Aborted when the turn is cancelled: running tools see it. */
  get signal (): AbortSignal {
    return this.#controller.signal
  }

  get stopped (): boolean {
    return this.#controller.signal.aborted
  }

  continueWith (run: ResponseRun): void {
    this.#current = run
  }

  abort (clientCancelled: boolean, cause?: GatewayError): void {
    this.#controller.abort()
    this.#current.abort(clientCancelled, cause)
  }
}
