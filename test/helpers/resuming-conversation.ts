/**
 * A client that behaves like a real resuming Realtime client across instance restarts: one
 * conversation, turn after turn (a user message with a client-chosen item id, then
 * `response.create` tagged with the turn), and when its socket closes with 1012, 1013 or 1006
 * it reconnects to another live instance with `conversation_id` + `resume_after=<last cursor>`.
 *
 * Requests in flight when a socket closes are settled on the new socket: the user item is sent
 * again (item ids are the client's, so a duplicate is answered `item_already_exists`); a
 * `response.create` whose `response.created` has not been seen is sent again only after a
 * round trip on the new socket (a retrieve of the turn's item) shows the resumed stream did not
 * bring it — a response still running elsewhere answers the second request with
 * `conversation_already_has_active_response`.
 */
import WebSocket from 'ws'
import { parseEventId } from '../../src/store/conversation-store.js'
import type { ServerEventLike } from './ws-client.js'

/** An instance a client may connect to. */
export interface Endpoint {
  readonly port: number
  /** `ws://…/v1/realtime?model=…` */
  readonly url: string
}

export interface ResumingConversationOptions {
  /** Names the conversation in ids and failure messages. */
  readonly name: string
  /** The instances a (re)connect may use now. */
  readonly endpoints: () => readonly Endpoint[]
  /** Longest wait for any one answer, in ms. */
  readonly timeoutMs?: number
  /** Which of the candidate instances a reconnect tries first (index, modulo their number): spreads clients. */
  readonly preference?: number
}

/** What one turn produced, as this client saw it. */
export interface TurnRecord {
  readonly turn: number
  readonly userText: string
  readonly itemId: string
  itemAcked: boolean
  responseId?: string
  /** The text of its deltas, in arrival order (across sockets). */
  text: string
  deltas: number
  /** Ports of the instances whose sockets delivered its deltas: two when a restart cut it. */
  readonly deltaPorts: Set<number>
  /** Its response.done `response`. */
  done?: Record<string, unknown>
  /** `response.create` requests sent for it. */
  requests: number
  /** A second response.create was answered conversation_already_has_active_response. */
  refusedAsActive: boolean
}

/** A received event with the port of the instance whose socket delivered it. */
export type SeenEvent = ServerEventLike & { readonly port: number }

/** Close codes after which a resuming client reconnects. */
const RECONNECT_CODES = new Set([1006, 1012, 1013])
const MAX_CONNECT_ATTEMPTS = 40
const CONNECT_RETRY_MS = 50

export class ResumingConversation {
  readonly name: string
  /** Every event received, in order, across sockets. */
  readonly events: SeenEvent[] = []
  /** Every close of one of its sockets, with the instance port; `established`: it had carried the session. */
  readonly closes: Array<{ port: number, code: number, established: boolean }> = []
  readonly turns: TurnRecord[] = []
  /** Protocol violations seen (duplicates, unexpected errors…). */
  readonly problems: string[] = []
  conversationId: string | undefined
  /** The instance of the current socket (0 while reconnecting). */
  port = 0
  readonly #options: ResumingConversationOptions
  #socket: WebSocket | undefined
  /** Bumped each time a socket is established (session.created). */
  #generation = 0
  #lastCursor: string | undefined
  #reconnecting: Promise<void> | undefined
  #stopping = false
  #failure: Error | undefined
  #eventSeq = 0
  readonly #waiters = new Set<() => void>()
  readonly #turnByResponse = new Map<string, TurnRecord>()
  readonly #turnByTag = new Map<string, TurnRecord>()

  constructor (options: ResumingConversationOptions) {
    this.name = options.name
    this.#options = options
  }

  /** The turn in progress (the last one), if any. */
  get current (): TurnRecord | undefined {
    return this.turns.at(-1)
  }

  /** Connects to `endpoint` (default: the first one offered). */
  async start (endpoint?: Endpoint): Promise<void> {
    if (endpoint !== undefined && await this.#open(endpoint)) return
    await this.#connect()
  }

  /** Runs one turn to its response.done, across any number of reconnects. */
  async turn (userText: string): Promise<TurnRecord> {
    const turn = this.turns.length + 1
    const record: TurnRecord = {
      turn,
      userText,
      itemId: `item_${this.name}_t${turn}`,
      itemAcked: false,
      text: '',
      deltas: 0,
      deltaPorts: new Set(),
      requests: 0,
      refusedAsActive: false
    }
    this.turns.push(record)
    this.#turnByTag.set(this.#tag(record), record)
    await this.#sendItem(record)
    await this.#requestResponse(record)
    await this.#until(() => record.done !== undefined, `response.done of turn ${turn}`)
    return record
  }

  /** Stops reconnecting and closes the socket. */
  async close (): Promise<void> {
    this.#stopping = true
    const socket = this.#socket
    if (socket === undefined || socket.readyState === WebSocket.CLOSED) return
    const closed = new Promise((resolve) => socket.once('close', resolve))
    socket.close()
    await closed
  }

  #tag (record: TurnRecord): string {
    return `${this.name}-t${record.turn}`
  }

  #eventId (kind: string): string {
    return `${this.name}-${kind}-${this.#eventSeq++}`
  }

  async #sendItem (record: TurnRecord): Promise<void> {
    const frame = (): string => JSON.stringify({
      type: 'conversation.item.create',
      event_id: this.#eventId('item'),
      item: { id: record.itemId, type: 'message', role: 'user', content: [{ type: 'input_text', text: record.userText }] }
    })
    for (;;) {
      const generation = await this.#established()
      this.#send(frame())
      await this.#until(() => record.itemAcked || this.#generation !== generation || this.#socket === undefined, `conversation.item.done of turn ${record.turn}`)
      if (record.itemAcked) return
    }
  }

  async #requestResponse (record: TurnRecord): Promise<void> {
    for (;;) {
      const generation = await this.#established()
      if (record.responseId !== undefined) return
      record.requests++
      this.#send(JSON.stringify({ type: 'response.create', event_id: this.#eventId('response'), response: { metadata: { turn: this.#tag(record) } } }))
      await this.#until(() => record.responseId !== undefined || this.#generation !== generation || this.#socket === undefined, `response.created of turn ${record.turn}`)
      if (record.responseId !== undefined) return
      // The socket changed before response.created: did the request arrive? A round trip on the
      // new socket lets the resumed stream bring its response.created if it did.
      const next = await this.#established()
      const probe = this.#eventId('probe')
      const from = this.events.length
      this.#send(JSON.stringify({ type: 'conversation.item.retrieve', event_id: probe, item_id: record.itemId }))
      await this.#until(() => record.responseId !== undefined || this.#generation !== next || this.#answered(from, probe, record.itemId), `answer to ${probe}`)
    }
  }

  /** Whether a retrieve sent when `from` events had arrived was answered (retrieved, or an error naming it). */
  #answered (from: number, eventId: string, itemId: string): boolean {
    return this.events.slice(from).some((e) => (e.type === 'conversation.item.retrieved' && (e['item'] as Record<string, unknown> | undefined)?.['id'] === itemId) ||
      (e.type === 'error' && (e['error'] as Record<string, unknown> | undefined)?.['event_id'] === eventId))
  }

  #send (frame: string): void {
    const socket = this.#socket
    if (socket?.readyState === WebSocket.OPEN) socket.send(frame)
  }

  /** Resolves with the current generation once a socket is established. */
  async #established (): Promise<number> {
    while (this.#socket === undefined || this.#reconnecting !== undefined) {
      if (this.#failure !== undefined) throw this.#failure
      if (this.#reconnecting !== undefined) await this.#reconnecting
      else await this.#until(() => this.#socket !== undefined, 'a socket')
    }
    return this.#generation
  }

  /** Waits until `condition` holds, re-checking on every event and socket change. */
  async #until (condition: () => boolean, what: string): Promise<void> {
    const timeoutMs = this.#options.timeoutMs ?? 20_000
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (this.#failure !== undefined) throw this.#failure
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms (closes: ${JSON.stringify(this.closes)}; last events: ${this.#recent()})`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, left)
        function wake (): void {
          clearTimeout(timer)
          resolve()
        }
        this.#waiters.add(wake)
      })
    }
  }

  /** The last few events, briefly, for failure messages. */
  #recent (): string {
    return this.events.slice(-8).map((e) => {
      const error = e['error'] as Record<string, unknown> | undefined
      return `${e.port}:${e.type}${error === undefined ? '' : `(${String(error['code'])} ${String(error['event_id'])})`}`
    }).join(', ')
  }

  #wake (): void {
    for (const wake of [...this.#waiters]) wake()
    this.#waiters.clear()
  }

  /** Opens a socket on a live instance, preferring another than the last (attaching and resuming once the conversation exists). */
  async #connect (): Promise<void> {
    const previous = this.port
    this.port = 0
    for (let attempt = 0; attempt < MAX_CONNECT_ATTEMPTS; attempt++) {
      const endpoints = this.#options.endpoints()
      const others = endpoints.filter((e) => e.port !== previous)
      const candidates = others.length > 0 ? others : endpoints
      const endpoint = candidates[(attempt + (this.#options.preference ?? 0)) % Math.max(1, candidates.length)]
      if (endpoint !== undefined && await this.#open(endpoint)) return
      await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS))
    }
    throw new Error(`${this.name}: could not reconnect after ${MAX_CONNECT_ATTEMPTS} attempts (closes: ${JSON.stringify(this.closes)})`)
  }

  /** One connection attempt: true once session.created arrived on it. */
  async #open (endpoint: Endpoint): Promise<boolean> {
    let url = endpoint.url
    if (this.conversationId !== undefined) {
      url += `&conversation_id=${this.conversationId}`
      if (this.#lastCursor !== undefined) url += `&resume_after=${this.#lastCursor}`
    }
    const socket = new WebSocket(url)
    return new Promise<boolean>((resolve) => {
      let established = false
      socket.on('error', () => {}) // refused or reset: the 'close' below decides
      socket.on('message', (data: Buffer) => {
        const event = JSON.parse(data.toString('utf8')) as ServerEventLike
        if (!established && event.type === 'session.created') {
          established = true
          const session = event['session'] as Record<string, unknown>
          this.conversationId ??= String(session['conversation_id'])
          this.#socket = socket
          this.port = endpoint.port
          this.#generation++
          resolve(true)
        }
        this.#receive({ ...event, port: endpoint.port })
      })
      socket.on('close', (code: number) => {
        this.closes.push({ port: endpoint.port, code, established })
        if (!established) return resolve(false)
        if (this.#socket !== socket) return
        this.#socket = undefined
        this.#wake()
        if (this.#stopping) return
        if (!RECONNECT_CODES.has(code)) {
          this.#failure = new Error(`${this.name}: socket closed with ${code}, which does not invite a reconnect`)
          this.#wake()
          return
        }
        this.#reconnecting = this.#connect().catch((err: unknown) => {
          this.#failure = err instanceof Error ? err : new Error(String(err))
        }).finally(() => {
          this.#reconnecting = undefined
          this.#wake()
        })
      })
    })
  }

  #receive (event: SeenEvent): void {
    this.events.push(event)
    if (parseEventId(event.event_id) !== undefined) this.#lastCursor = event.event_id
    switch (event.type) {
      case 'conversation.item.added':
      case 'conversation.item.done': {
        const id = (event['item'] as Record<string, unknown> | undefined)?.['id']
        const record = this.turns.find((t) => t.itemId === id)
        if (record !== undefined) record.itemAcked = true
        break
      }
      case 'response.created': {
        const response = event['response'] as Record<string, unknown>
        const tag = (response['metadata'] as Record<string, unknown> | null | undefined)?.['turn']
        const record = typeof tag === 'string' ? this.#turnByTag.get(tag) : undefined
        if (record === undefined) {
          this.problems.push(`response.created of no turn of ours: ${JSON.stringify(response).slice(0, 200)}`)
          break
        }
        const id = String(response['id'])
        if (record.responseId !== undefined && record.responseId !== id) this.problems.push(`turn ${record.turn} got a second response ${id} (first ${record.responseId})`)
        record.responseId ??= id
        this.#turnByResponse.set(id, record)
        break
      }
      case 'response.output_text.delta': {
        const record = this.#turnByResponse.get(String(event['response_id']))
        if (record === undefined) break
        record.text += String(event['delta'])
        record.deltas++
        record.deltaPorts.add(event.port)
        break
      }
      case 'response.done': {
        const response = event['response'] as Record<string, unknown>
        const record = this.#turnByResponse.get(String(response['id']))
        if (record === undefined) break
        if (record.done !== undefined) this.problems.push(`turn ${record.turn}: a second response.done`)
        record.done = response
        break
      }
      case 'error': {
        const error = event['error'] as Record<string, unknown>
        const code = String(error['code'])
        const eventId = typeof error['event_id'] === 'string' ? error['event_id'] : ''
        if (code === 'item_already_exists' && eventId.includes('-item-')) {
          // A user item sent again after a reconnect had arrived the first time.
          const record = this.turns.find((t) => !t.itemAcked)
          if (record !== undefined) record.itemAcked = true
        } else if (code === 'conversation_already_has_active_response' && eventId.includes('-response-')) {
          const record = this.current
          if (record !== undefined) record.refusedAsActive = true
        } else if (code !== 'item_not_found' || !eventId.includes('-probe-')) {
          this.problems.push(`error ${code}: ${String(error['message'])} (event_id ${eventId})`)
        }
        break
      }
    }
    this.#wake()
  }
}
