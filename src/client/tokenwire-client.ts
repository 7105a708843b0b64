/**
 * TokenwireClient: a Realtime (text) client that survives its sockets. It keeps the
 * conversation id and the last event cursor, reconnects with backoff and resumes with
 * `conversation_id` + `resume_after` (dropping any event it already has), and turns the event
 * stream into replies (async iterables of text), client-side tool calls and plain events.
 */
import type { ServerEvent } from '../protocol/events.js'
import { ClientTools } from './client-tools.js'
import { Connection, DEFAULT_RECONNECT, type ConnectionFailure, type ConnectionStatus, type ReconnectOptions } from './connection.js'
import { CursorTracker } from './cursor.js'
import { Emitter } from './emitter.js'
import { isUnauthorized } from './models.js'
import { Reply, responseError, type FinalStatus, type ReplyControl, type ReplyErrorInfo, type ResponseResource } from './reply.js'
import { globalWebSocket, type WebSocketConstructorLike } from './web-socket.js'

/** One part of a user message. */
export type InputPart =
  | { readonly type: 'input_text', readonly text: string }
  | { readonly type: 'input_image', readonly image_url: string, readonly detail?: 'auto' | 'low' | 'high' }

/** A conversation item as the server sends it. */
export type ConversationItem = Extract<ServerEvent, { type: 'conversation.item.done' }>['item']

export interface TokenwireClientOptions {
  /** The Realtime endpoint, e.g. `ws://127.0.0.1:8080/v1/realtime` (`http(s)://` is accepted too). */
  readonly url: string
  /** The gateway key; sent as the `openai-insecure-api-key.<key>` subprotocol (browsers cannot set headers). */
  readonly apiKey?: string
  /** The model (`?model=`); the gateway's DEFAULT_MODEL when absent. */
  readonly model?: string
  /** Attach to this conversation instead of starting one. */
  readonly conversationId?: string
  /** With `conversationId`: receive only the events after this cursor (no item replay). */
  readonly resumeAfter?: string
  /**
   * Names this client in the metadata of the responses it asks for, so it answers its own tool
   * calls and no one else's. Keep it across page loads (sessionStorage) to finish a turn after a reload.
   */
  readonly clientId?: string
  /** Session settings (instructions, temperature…) applied on every connection. */
  readonly session?: Record<string, unknown>
  /** The WebSocket class: Node 20 has no global one — pass `ws`'s. Default: `globalThis.WebSocket`. */
  readonly WebSocket?: WebSocketConstructorLike
  /** Used to tell a refused key from a network failure. Default: `globalThis.fetch`; `null` turns it off. */
  readonly fetch?: typeof fetch | null
  readonly reconnect?: Partial<ReconnectOptions>
  /** Most client events kept while disconnected (default 256). */
  readonly maxOutbox?: number
  /** For tests: [0, 1), used for the backoff jitter. */
  readonly random?: () => number
}

/** An error the application should know about. `fatal`: the client is closed for good. */
export interface ClientError {
  /** A Realtime error code (`conversation_not_found`, `item_too_large`…) or the client's own (`invalid_api_key`, `connection_closed`…). */
  readonly code: string
  readonly message: string
  readonly fatal: boolean
  /** For an `error` event: the client event it answers, and the field at fault. */
  readonly eventId?: string | null
  readonly param?: string | null
  /** For a closed connection: the WebSocket close code. */
  readonly closeCode?: number
}

export interface ClientEvents {
  /** The connection changed state. */
  status: [status: ConnectionStatus]
  /** The conversation is known (the first `session.created`) or changed. */
  conversation: [conversationId: string]
  /** Every server event, once: duplicates from a resume are dropped. */
  event: [event: ServerEvent]
  /** An item is complete (`conversation.item.done`): history on attach, then each new one. Once per id and status. */
  item: [item: ConversationItem]
  /** A turn started: by this client's `send()`, or by anyone else on the conversation. */
  reply: [reply: Reply]
  error: [error: ClientError]
}

export type { ConnectionStatus, ConnectionState, ConnectionFailure, ReconnectOptions } from './connection.js'

interface Turn {
  readonly id: string
  readonly control: ReplyControl
  readonly mine: boolean
  readonly metadata: Record<string, string>
  readonly params: Record<string, unknown>
  /** The user item to see acknowledged before `response.create` (own turns with a message). */
  item?: { readonly id: string, readonly frame: string, acked: boolean }
  /** `response.create` was sent for the turn's next response and it has not started yet. */
  requested: boolean
  cancelRequested: boolean
  /** Tool calls of the last response, waiting for outputs before the turn goes on. */
  waiting: { readonly callIds: Set<string>, readonly answered: boolean } | undefined
}

const TAG_CLIENT = 'tw_client'
const TAG_TURN = 'tw_turn'
/** Error codes that concern the request only and are not worth an `error` event. */
const QUIET_ERRORS = new Set(['response_cancel_not_active'])

export class TokenwireClient extends Emitter<ClientEvents> {
  /** Client-side tools: `tools.register(name, { description, parameters }, fn)`. */
  readonly tools: ClientTools
  readonly clientId: string
  readonly #options: TokenwireClientOptions
  readonly #connection: Connection
  readonly #cursor: CursorTracker
  #conversationId: string | undefined
  /** `conversation` was emitted at least once. */
  #announced = false
  #session: Record<string, unknown>
  #eventSeq = 0
  #connectWaiters: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  readonly #turns = new Map<string, Turn>()
  readonly #responseTurns = new Map<string, Turn>()
  /** Client event id → the turn whose request it carried. */
  readonly #requests = new Map<string, { turn: Turn, kind: 'item' | 'response' | 'output' }>()
  /** Item id → last status seen, so `item` fires once per state. */
  readonly #items = new Map<string, string>()
  /** Call ids that have an output (from anyone). */
  readonly #outputs = new Set<string>()
  /** Call ids this client answered or is answering. */
  readonly #answering = new Set<string>()
  /** Output item id → its frame, until acknowledged (resent after a reconnect). */
  readonly #unackedOutputs = new Map<string, { frame: string, turn: Turn }>()
  #activeResponseId: string | undefined
  /** Turns this client cancelled between two responses: a late follow-up of theirs is cancelled too. */
  readonly #cancelledTurns = new Set<string>()

  constructor (options: TokenwireClientOptions) {
    super()
    this.#options = options
    this.clientId = options.clientId ?? randomId()
    this.#conversationId = options.conversationId
    this.#session = { ...options.session }
    this.#cursor = new CursorTracker(options.conversationId === undefined ? undefined : options.resumeAfter)
    this.tools = new ClientTools(() => this.#declareSession())
    const WebSocketClass = options.WebSocket ?? globalWebSocket()
    if (WebSocketClass === undefined) throw new TypeError('no global WebSocket: pass the WebSocket option (e.g. the `ws` package\'s class)')
    const fetcher = options.fetch === undefined ? globalThis.fetch : options.fetch
    this.#connection = new Connection({
      url: () => this.#url(),
      protocols: ['realtime', ...(options.apiKey === undefined ? [] : [`openai-insecure-api-key.${options.apiKey}`])],
      WebSocket: WebSocketClass,
      reconnect: { ...DEFAULT_RECONNECT, ...options.reconnect },
      maxOutbox: options.maxOutbox ?? 256,
      random: options.random ?? Math.random,
      isUnauthorized: async () => fetcher === null || fetcher === undefined ? false : isUnauthorized(fetcher, options.url, options.apiKey),
      onStatus: (status) => this.#onStatus(status),
      onMessage: (data) => this.#onMessage(data)
    })
  }

  /** The conversation this client is attached to, once known. */
  get conversationId (): string | undefined { return this.#conversationId }
  /** The last event cursor received: `resume_after` for the next connection. */
  get lastEventId (): string | undefined { return this.#cursor.lastEventId }
  get status (): ConnectionStatus { return this.#connection.status }
  /** The response being generated in the conversation right now, by anyone, if any. */
  get activeResponseId (): string | undefined { return this.#activeResponseId }

  /**
   * Connects (once; reconnecting is automatic). Resolves when the session is established;
   * rejects if the client closes for good first (e.g. a refused key or an unknown conversation).
   */
  async connect (): Promise<void> {
    if (this.status.state === 'open') return
    if (this.status.state === 'closed') throw new Error(this.status.failure?.message ?? 'the client is closed')
    const ready = new Promise<void>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }))
    this.#connection.start()
    return ready
  }

  /** Skips a backoff wait, or reconnects after a final close (e.g. after a new key was given). */
  reconnect (): void {
    this.#connection.retryNow()
  }

  /**
   * Adds a user message (text, or text and image parts) and asks for a reply. Works while
   * disconnected too: the events wait in the outbox. Returns the turn's reply.
   */
  send (input: string | readonly InputPart[], options: { readonly instructions?: string, readonly metadata?: Record<string, string> } = {}): Reply {
    const content = typeof input === 'string' ? [{ type: 'input_text', text: input }] : input.map((part) => ({ ...part }))
    const itemId = randomId('item_tw')
    const turn = this.#newTurn(randomId('turn'), true, {
      ...options.metadata,
      [TAG_CLIENT]: this.clientId
    }, options.instructions === undefined ? {} : { instructions: options.instructions }, itemId)
    const eventId = this.#nextEventId()
    const frame = JSON.stringify({ type: 'conversation.item.create', event_id: eventId, item: { id: itemId, type: 'message', role: 'user', content } })
    turn.item = { id: itemId, frame, acked: false }
    this.#requests.set(eventId, { turn, kind: 'item' })
    this.emit('reply', turn.control.reply)
    const failure = this.status.failure
    if (failure !== undefined) this.#finish(turn, 'failed', { code: failure.code, message: failure.message })
    else if (!this.#connection.send(frame)) this.#finish(turn, 'failed', { code: 'outbox_full', message: 'too many events are waiting for the connection' })
    return turn.control.reply
  }

  /** Sends any client event as is (it waits in the outbox while disconnected). */
  sendEvent (event: { readonly type: string } & Record<string, unknown>): boolean {
    return this.#connection.send(JSON.stringify(event))
  }

  /** Merges settings into the session (e.g. `{ model }`); they are re-applied on every connection. */
  updateSession (patch: Record<string, unknown>): void {
    this.#session = { ...this.#session, ...patch }
    this.#declareSession()
  }

  /** Cancels the reply being generated in the conversation (anyone's) and this client's pending turns. */
  cancel (): void {
    for (const turn of this.#turns.values()) if (turn.mine) this.#cancelTurn(turn)
    if (this.#activeResponseId !== undefined && this.#responseTurns.get(this.#activeResponseId)?.mine !== true) {
      this.#sendCancel(this.#activeResponseId)
    }
  }

  /** Closes for good. Replies still open end `incomplete` (the gateway keeps generating them). */
  close (): void {
    this.#connection.close()
  }

  #newTurn (id: string, mine: boolean, metadata: Record<string, string>, params: Record<string, unknown>, inputItemId?: string): Turn {
    const turn: Turn = {
      id,
      mine,
      metadata: { ...metadata, [TAG_TURN]: id },
      params,
      requested: false,
      cancelRequested: false,
      waiting: undefined,
      control: Reply.create({ turnId: id, mine, ...(inputItemId === undefined ? {} : { inputItemId }), cancel: () => this.#cancelTurn(turn) })
    }
    this.#turns.set(id, turn)
    return turn
  }

  #url (): string {
    const url = new URL(this.#options.url)
    url.protocol = url.protocol.replace(/^http/, 'ws')
    if (this.#options.model !== undefined) url.searchParams.set('model', this.#options.model)
    if (this.#conversationId !== undefined) {
      url.searchParams.set('conversation_id', this.#conversationId)
      const resumeAfter = this.#cursor.lastEventId
      if (resumeAfter !== undefined) url.searchParams.set('resume_after', resumeAfter)
    }
    return url.toString()
  }

  #nextEventId (): string {
    return `evt_${this.clientId.slice(0, 8)}_${(this.#eventSeq++).toString(36)}`
  }

  #onStatus (status: ConnectionStatus): void {
    if (status.state === 'closed') this.#closedForGood(status.failure)
    this.emit('status', status)
  }

  #closedForGood (failure: ConnectionFailure | undefined): void {
    const error = failure ?? { code: 'client_closed', message: 'closed by the client' }
    const byClient = error.code === 'client_closed'
    for (const turn of [...this.#turns.values()]) this.#finish(turn, byClient ? 'incomplete' : 'failed', { code: error.code, message: error.message })
    for (const waiter of this.#connectWaiters.splice(0)) waiter.reject(new Error(error.message))
    if (!byClient) this.emit('error', { code: error.code, message: error.message, fatal: true, ...(error.closeCode === undefined ? {} : { closeCode: error.closeCode }) })
  }

  /** Declares tools and session settings on the current socket (and again after each reconnect). */
  #declareSession (): void {
    if (this.status.state !== 'open') return
    this.#connection.send(this.#sessionFrame())
  }

  #sessionFrame (): string {
    return JSON.stringify({ type: 'session.update', event_id: this.#nextEventId(), session: { type: 'realtime', ...this.#session, tools: this.tools.definitions() } })
  }

  #onMessage (data: unknown): void {
    if (typeof data !== 'string') return
    let event: ServerEvent
    try {
      const parsed: unknown = JSON.parse(data)
      if (!isServerEvent(parsed)) return
      event = parsed
    } catch {
      return
    }
    if (!this.#cursor.accept(event.event_id)) return
    this.#handle(event)
    this.emit('event', event)
  }

  #handle (event: ServerEvent): void {
    switch (event.type) {
      case 'session.created': return this.#sessionCreated(event.session.conversation_id)
      case 'conversation.item.added': return this.#itemSeen(event.item, false)
      case 'conversation.item.done': return this.#itemSeen(event.item, true)
      case 'response.created': return this.#responseCreated(event.response)
      case 'response.output_text.delta': {
        this.#responseTurns.get(event.response_id)?.control.text(event.delta)
        return
      }
      case 'response.done': return this.#responseDone(event.response)
      case 'error': return this.#serverError(event.error)
      default:
    }
  }

  #sessionCreated (conversationId: string): void {
    const changed = conversationId !== this.#conversationId || !this.#announced
    this.#announced = true
    this.#conversationId = conversationId
    // Settings first: a resent request must run with this client's tools.
    if (this.tools.definitions().length > 0 || Object.keys(this.#session).length > 0) this.#connection.sendEarly(this.#sessionFrame())
    // Requests the last socket may have lost: item creates are idempotent (item ids are ours).
    for (const turn of this.#turns.values()) {
      if (turn.item !== undefined && !turn.item.acked) this.#connection.sendEarly(turn.item.frame)
    }
    for (const { frame } of this.#unackedOutputs.values()) this.#connection.sendEarly(frame)
    this.#connection.established()
    if (changed) this.emit('conversation', conversationId)
    for (const waiter of this.#connectWaiters.splice(0)) waiter.resolve()
  }

  #itemSeen (item: ConversationItem, done: boolean): void {
    const mine = [...this.#turns.values()].find((turn) => turn.item?.id === item.id)
    if (mine !== undefined) this.#itemAcked(mine)
    if (item.type === 'function_call_output') {
      this.#outputs.add(item.call_id)
      if (item.id !== undefined) this.#unackedOutputs.delete(item.id)
      for (const turn of this.#turns.values()) if (turn.waiting?.callIds.has(item.call_id) === true) this.#maybeContinue(turn)
    }
    const status = String(Reflect.get(item, 'status') ?? 'completed')
    if (!done || item.id === undefined || this.#items.get(item.id) === status) return
    this.#items.set(item.id, status)
    this.emit('item', item)
  }

  /** The turn's user message is in the conversation: ask for the reply. */
  #itemAcked (turn: Turn): void {
    if (turn.item === undefined || turn.item.acked) return
    turn.item.acked = true
    if (turn.cancelRequested) return this.#finish(turn, 'cancelled')
    this.#requestResponse(turn)
  }

  #requestResponse (turn: Turn): void {
    const eventId = this.#nextEventId()
    this.#requests.set(eventId, { turn, kind: 'response' })
    turn.requested = true
    this.#connection.send(JSON.stringify({ type: 'response.create', event_id: eventId, response: { ...turn.params, metadata: turn.metadata } }))
  }

  #responseCreated (response: ResponseResource): void {
    const id = response.id
    if (id === undefined) return
    this.#activeResponseId = id
    const metadata = response.metadata ?? {}
    const tag = metadata[TAG_TURN]
    let turn = tag === undefined ? undefined : this.#turns.get(tag)
    if (tag !== undefined && this.#cancelledTurns.has(tag)) {
      this.#sendCancel(id)
      return
    }
    if (turn === undefined) {
      // Someone else's turn (another tab, another client), or ours from before a reload.
      const mine = metadata[TAG_CLIENT] === this.clientId
      // A turn between responses cannot go on once another turn runs.
      for (const other of [...this.#turns.values()]) if (other.waiting !== undefined) this.#finish(other, 'incomplete')
      turn = this.#newTurn(tag ?? id, mine, metadata, {})
      turn.control.started(id)
      this.#responseTurns.set(id, turn)
      this.emit('reply', turn.control.reply)
    } else {
      turn.control.started(id)
      this.#responseTurns.set(id, turn)
    }
    turn.requested = false
    turn.waiting = undefined
    if (turn.cancelRequested) this.#sendCancel(id)
  }

  #responseDone (response: ResponseResource): void {
    const id = response.id
    if (id === undefined) return
    if (this.#activeResponseId === id) this.#activeResponseId = undefined
    const turn = this.#responseTurns.get(id)
    this.#responseTurns.delete(id)
    if (turn === undefined) return
    turn.control.responseDone(response)
    const status = response.status ?? 'completed'
    if (status !== 'completed') return this.#finish(turn, status === 'in_progress' ? 'incomplete' : status, responseError(response))
    const calls = (response.output ?? []).flatMap((item) => item.type === 'function_call' && item.call_id !== undefined ? [{ callId: item.call_id, name: item.name, arguments: item.arguments }] : [])
    const tagged = response.metadata?.[TAG_TURN] !== undefined
    if (calls.length === 0 || !tagged || turn.cancelRequested) return this.#finish(turn, turn.cancelRequested ? 'cancelled' : 'completed')
    // Tool calls: this client answers its own tools; the gateway answers its tools and goes on by itself.
    const ours = turn.mine ? calls.filter((call) => this.tools.has(call.name) && !this.#outputs.has(call.callId) && !this.#answering.has(call.callId)) : []
    turn.waiting = { callIds: new Set(calls.map((call) => call.callId)), answered: ours.length > 0 }
    for (const call of ours) {
      this.#answering.add(call.callId)
      this.tools.run(call.name, call.callId, call.arguments).then((output) => this.#sendOutput(turn, call.callId, output), () => {})
    }
    this.#maybeContinue(turn)
  }

  #sendOutput (turn: Turn, callId: string, output: string): void {
    if (this.status.state === 'closed') return
    const itemId = randomId('item_tw')
    const eventId = this.#nextEventId()
    const frame = JSON.stringify({ type: 'conversation.item.create', event_id: eventId, item: { id: itemId, type: 'function_call_output', call_id: callId, output } })
    this.#unackedOutputs.set(itemId, { frame, turn })
    this.#requests.set(eventId, { turn, kind: 'output' })
    this.#connection.send(frame)
  }

  /** Once every call of the last response has an output, the client asks for the follow-up (if it answered any). */
  #maybeContinue (turn: Turn): void {
    const waiting = turn.waiting
    if (waiting === undefined || turn.requested) return
    if (![...waiting.callIds].every((callId) => this.#outputs.has(callId))) return
    if (!waiting.answered) return // the gateway's own tools: it starts the follow-up itself
    if (turn.cancelRequested) return this.#finish(turn, 'cancelled')
    this.#requestResponse(turn)
  }

  #serverError (error: { code?: string | null, message: string, param?: string | null, event_id?: string | null }): void {
    const code = error.code ?? 'error'
    const request = error.event_id === undefined || error.event_id === null ? undefined : this.#requests.get(error.event_id)
    if (request !== undefined && code === 'item_already_exists') {
      // A request resent after a reconnect had arrived the first time.
      if (request.kind === 'item') this.#itemAcked(request.turn)
      return
    }
    if (request !== undefined) {
      this.#finish(request.turn, 'failed', { code, message: error.message })
    }
    if (QUIET_ERRORS.has(code)) return
    this.emit('error', { code, message: error.message, fatal: false, eventId: error.event_id ?? null, param: error.param ?? null })
  }

  #cancelTurn (turn: Turn): void {
    if (turn.cancelRequested) return
    turn.cancelRequested = true
    const responseId = turn.control.reply.responseId
    const running = responseId !== undefined && this.#responseTurns.has(responseId)
    if (running) return this.#sendCancel(responseId)
    if (turn.requested) return // cancelled as soon as its response starts
    // Between two responses while the gateway runs its tools: the gateway stops them.
    if (turn.waiting !== undefined && !turn.waiting.answered) this.#sendCancel()
    this.#cancelledTurns.add(turn.id)
    if (this.#cancelledTurns.size > 64) this.#cancelledTurns.delete(this.#cancelledTurns.values().next().value ?? '')
    this.#finish(turn, 'cancelled')
  }

  /** Cancels a response (by default whatever runs in the conversation, tools included). */
  #sendCancel (responseId?: string): void {
    this.#connection.send(JSON.stringify({ type: 'response.cancel', event_id: this.#nextEventId(), ...(responseId === undefined ? {} : { response_id: responseId }) }))
  }

  #finish (turn: Turn, status: FinalStatus, error?: ReplyErrorInfo): void {
    this.#turns.delete(turn.id)
    for (const [responseId, owner] of this.#responseTurns) if (owner === turn) this.#responseTurns.delete(responseId)
    for (const [eventId, request] of this.#requests) if (request.turn === turn) this.#requests.delete(eventId)
    for (const [itemId, output] of this.#unackedOutputs) if (output.turn === turn) this.#unackedOutputs.delete(itemId)
    turn.control.finish(status, error)
  }
}

/** Checks the two fields every server event has; the rest is the gateway's protocol contract. */
function isServerEvent (value: unknown): value is ServerEvent {
  return typeof value === 'object' && value !== null && typeof Reflect.get(value, 'type') === 'string' && typeof Reflect.get(value, 'event_id') === 'string'
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789'

/** 16 random characters of [a-z0-9] (about 82 bits), from Web Crypto (browsers and Node alike). */
export function randomId (prefix?: string): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16))
  let id = ''
  for (const byte of bytes) id += ALPHABET[byte % ALPHABET.length] ?? 'x'
  return prefix === undefined ? id : `${prefix}_${id}`
}
