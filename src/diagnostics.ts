/**
 * The named `node:diagnostics_channel` channels the layers publish on (undici's pattern):
 * metrics/, tracing/ and usage/ subscribe; the publishers never import metrics/ or tracing/. A publisher
 * checks `hasSubscribers` first, so with nobody listening a publish costs one property read.
 * Per-token messages are objects that already exist (the run itself, the frame), never new ones.
 *
 * Channels are process-wide: every gateway built in one process sees every message (tests build
 * several). What must be counted once per gateway carries a `scope` (the gateway's own object).
 */
import { channel, subscribe, tracingChannel, unsubscribe, type Channel } from 'node:diagnostics_channel'
import type { ResponseResource } from './protocol/events.js'

/** A typed channel: publishers and subscribers agree on `T`. */
export class Topic<T> {
  readonly name: string
  readonly #channel: Channel

  constructor (name: string) {
    this.name = name
    this.#channel = channel(name)
  }

  /** True while anyone listens: check it before building a message. */
  get hasSubscribers (): boolean {
    return this.#channel.hasSubscribers
  }

  publish (message: T): void {
    this.#channel.publish(message)
  }

  /**
   * Listens until the returned function is called. A listener must not throw: the publisher
   * carries on, but Node rethrows the error as an uncaught exception on the next tick.
   */
  subscribe (listener: (message: T) => void): () => void {
    // Only `publish` (typed T) writes to this channel, so every message is a T: the listener is
    // subscribed as it is (no wrapper call per message).
    const onMessage = listener as (message: unknown) => void
    subscribe(this.name, onMessage)
    return () => { unsubscribe(this.name, onMessage) }
  }
}

/** What every message about one response (session/response-run.ts) names. */
export interface ResponseMessage {
  /** The run itself: every message about this response carries this same object. */
  readonly run: object
  readonly id: string
  /** The model the request names (upstream model, before any routing). */
  readonly model: string
  /** The upstream request object; `upstreamRequest` and `upstreamEnd` carry the same one. */
  readonly request: object
}

/** A response starts generating on this instance. */
export interface ResponseStarted extends ResponseMessage {
  /** `null`: an out-of-band response. */
  readonly conversationId: string | null
}
export const responseStarted = new Topic<ResponseStarted>('tokenwire:response:start')

/** Each output event of a response (text delta, tool call opened, arguments delta): the run object. */
export const responseOutput = new Topic<object>('tokenwire:response:output')

/** A response ended; `response` is its final resource, with status and usage. */
export interface ResponseEnded extends ResponseMessage {
  readonly response: ResponseResource
}
export const responseDone = new Topic<ResponseEnded>('tokenwire:response:done')

/** The gateway asks for a conversation's lease to start a response (the response id). */
export const responseReserve = new Topic<string>('tokenwire:response:reserve')

/** A session's provider is asked to stream `request` for `tenant` (usage/with-tenant.ts). */
export interface UpstreamRequested {
  readonly request: object
  readonly tenant: string
  /** The gateway the session belongs to. */
  readonly scope: object
}
export const upstreamRequest = new Topic<UpstreamRequested>('tokenwire:upstream:request')

/** The upstream stream of `request` was consumed to its end; `error` when it failed (not when cancelled). */
export interface UpstreamEnded {
  readonly request: object
  readonly error?: unknown
}
export const upstreamEnd = new Topic<UpstreamEnded>('tokenwire:upstream:end')

/** An upstream attempt failed and will be retried (the error). */
export const upstreamRetry = new Topic<unknown>('tokenwire:upstream:retry')

/** A Redis operation failed: the conversation store (unavailable or unexpected reply), or a usage write. */
export interface RedisFailure {
  readonly operation: 'store' | 'usage'
  readonly error: unknown
}
export const redisError = new Topic<RedisFailure>('tokenwire:redis:error')

/** Every text frame handed to a client socket (the frame itself). */
export const socketFrame = new Topic<string>('tokenwire:socket:frame')

/** A local socket attached to, or left, a conversation (the conversation id). */
export const deviceAttached = new Topic<string>('tokenwire:conversation:attach')
export const deviceDetached = new Topic<string>('tokenwire:conversation:detach')

/** One append of a response's events to the conversation log (conversation/writer.ts), traced start to end. */
export interface StoreAppendContext {
  readonly conversationId: string
  /** Events in the batch. */
  readonly events: number
  /** Set by the channel when the append failed. */
  error?: unknown
}
export const storeAppend = tracingChannel<unknown, StoreAppendContext>('tokenwire:store:append')

/** Publishes a store failure that is an outage or a Redis bug (not a refusal such as a lost lease), and returns it. */
export function observeStoreError<E extends { readonly code: string }> (err: E): E {
  if (redisError.hasSubscribers && (err.code === 'GW_ERR_STORE_UNAVAILABLE' || err.code === 'GW_ERR_SERVER_INTERNAL')) {
    redisError.publish({ operation: 'store', error: err })
  }
  return err
}
