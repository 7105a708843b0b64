/**
 * A plain `ws` Realtime client for tests: records every server event and lets a test await
 * the next one of a type (never a sleep).
 */
import { once } from 'node:events'
import WebSocket, { type ClientOptions } from 'ws'

export interface ServerEventLike {
  type: string
  event_id: string
  [key: string]: unknown
}

export class TestClient {
  readonly ws: WebSocket
  /** Every event received, in order. */
  readonly events: ServerEventLike[] = []
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number, reason: string }>
  #cursor = 0
  #waiters: Array<() => void> = []

  private constructor (ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data: Buffer) => {
      this.events.push(JSON.parse(data.toString('utf8')) as ServerEventLike)
      for (const wake of this.#waiters.splice(0)) wake()
    })
    this.closed = new Promise((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => {
        resolve({ code, reason: reason.toString() })
        for (const wake of this.#waiters.splice(0)) wake()
      })
    })
  }

  /** Opens a socket and waits for `session.created`. */
  static async connect (url: string, options: ClientOptions & { protocols?: string[] } = {}): Promise<TestClient> {
    const client = await TestClient.open(url, options)
    await client.next('session.created')
    return client
  }

  /** Opens a socket, expecting nothing in particular from the server. */
  static async open (url: string, options: ClientOptions & { protocols?: string[] } = {}): Promise<TestClient> {
    const { protocols, ...rest } = options
    const client = new TestClient(new WebSocket(url, protocols ?? [], rest))
    await once(client.ws, 'open')
    return client
  }

  send (event: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(event))
  }

  sendRaw (data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary })
  }

  /** The next unread event (of `type`, skipping others); rejects if the socket closes first. */
  async next (type?: string): Promise<ServerEventLike> {
    for (;;) {
      while (this.#cursor < this.events.length) {
        const event = this.events[this.#cursor++]
        if (event !== undefined && (type === undefined || event.type === type)) return event
      }
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting for ${type ?? 'an event'}`)
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
  }

  /** Every unread event up to and including the next one of `type`. */
  async until (type: string): Promise<ServerEventLike[]> {
    const start = this.#cursor
    await this.next(type)
    return this.events.slice(start, this.#cursor)
  }

  /** The conversation this socket is attached to (from its session.created). */
  get conversationId (): string {
    const session = this.events.find((e) => e.type === 'session.created')?.['session']
    return typeof session === 'object' && session !== null && 'conversation_id' in session ? String(session.conversation_id) : ''
  }

  /** Sends a user message and a response.create, and resolves every event through response.done. */
  async ask (text: string): Promise<ServerEventLike[]> {
    this.send(userMessage(text))
    this.send({ type: 'response.create' })
    return this.until('response.done')
  }

  async close (): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return
    this.ws.close()
    await this.closed
  }
}

/** A conversation.item.create event for a user text message. */
export function userMessage (text: string): Record<string, unknown> {
  return { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } }
}

/** The concatenated text deltas of a list of events. */
export function textOf (events: readonly ServerEventLike[]): string {
  return events.filter((e) => e.type === 'response.output_text.delta').map((e) => String(e['delta'])).join('')
}
