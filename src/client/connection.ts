/**
 * One logical connection to the gateway over a succession of sockets: dials, keeps an outbox
 * while no socket is usable, and after a drop decides from the close code whether and when to
 * dial again (exponential backoff with jitter). It knows nothing of the Realtime protocol except
 * the close codes; the client tells it when a session is established.
 */
import { backoffDelay, closeAction, type BackoffOptions } from './close-policy.js'
import { OPEN, type CloseEventLike, type MessageEventLike, type WebSocketConstructorLike, type WebSocketLike } from './web-socket.js'

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'

/** Why a connection ended for good. */
export interface ConnectionFailure {
  /** `invalid_api_key`, `connection_closed` (a final close code), `retries_exhausted`, `client_closed`. */
  readonly code: string
  readonly message: string
  readonly closeCode?: number
}

export interface ConnectionStatus {
  readonly state: ConnectionState
  /** Failed attempts since the last established session. */
  readonly attempt: number
  /** While `reconnecting`: the wait before the next attempt, in ms. */
  readonly retryInMs?: number
  /** The close code and reason of the last socket (1006: it dropped without a close frame). */
  readonly code?: number
  readonly reason?: string
  /** While `closed`: why. */
  readonly failure?: ConnectionFailure
}

export interface ReconnectOptions extends BackoffOptions {
  /** Least wait after 1013 (the instance is full), in ms. */
  readonly tryLaterDelayMs: number
  /** Attempts after which the connection gives up. */
  readonly maxAttempts: number
  /** A dial that neither opens nor fails within this is abandoned, in ms. */
  readonly connectTimeoutMs: number
}

export const DEFAULT_RECONNECT: ReconnectOptions = {
  baseDelayMs: 500,
  maxDelayMs: 15_000,
  tryLaterDelayMs: 5_000,
  maxAttempts: Number.POSITIVE_INFINITY,
  connectTimeoutMs: 15_000
}

export interface ConnectionOptions {
  /** The URL of the next dial (it changes as the conversation and its cursor become known). */
  readonly url: () => string
  readonly protocols: string[]
  readonly WebSocket: WebSocketConstructorLike
  readonly reconnect: ReconnectOptions
  /** Most frames kept while no socket is open. */
  readonly maxOutbox: number
  readonly random: () => number
  /**
   * Asked after a socket failed before it opened (a browser cannot see the HTTP status of a
   * refused upgrade): resolves true when the key is refused, which ends the connection.
   */
  readonly isUnauthorized: () => Promise<boolean>
  readonly onStatus: (status: ConnectionStatus) => void
  readonly onMessage: (data: unknown) => void
}

export class Connection {
  readonly #options: ConnectionOptions
  #socket: WebSocketLike | undefined
  #status: ConnectionStatus = { state: 'idle', attempt: 0 }
  #timer: ReturnType<typeof setTimeout> | undefined
  #ready = false
  /** Counts dials: a decision about an older socket (a late auth probe) is dropped. */
  #dials = 0
  readonly #outbox: string[] = []

  constructor (options: ConnectionOptions) {
    this.#options = options
  }

  get status (): ConnectionStatus { return this.#status }

  /** Dials, once: later dials are the connection's own business. */
  start (): void {
    if (this.#status.state === 'idle') this.#dial()
  }

  /**
   * Dials now: skips the rest of a backoff wait, or starts over after a final close (e.g. with
   * a new key; attempts reset, the outbox is kept). Does nothing while a socket is up or dialing.
   */
  retryNow (): void {
    const { state } = this.#status
    if (state === 'open' || state === 'connecting') return
    clearTimeout(this.#timer)
    if (state === 'closed') this.#setStatus({ state: 'idle', attempt: 0 })
    this.#dial()
  }

  /** The server accepted the session: frames flow, and backoff starts again from the first step. */
  established (): void {
    this.#ready = true
    this.#setStatus({ state: 'open', attempt: 0 })
    this.#flush()
  }

  /** Sends now, or once a session is established. False when the outbox is full. */
  send (frame: string): boolean {
    if (this.#ready && this.#socket?.readyState === OPEN) {
      this.#socket.send(frame)
      return true
    }
    if (this.#outbox.length >= this.#options.maxOutbox) return false
    this.#outbox.push(frame)
    return true
  }

  /**
   * Sends before the session is established (the first frames of a new socket), unless the
   * frame already waits in the outbox (it leaves with the outbox then).
   */
  sendEarly (frame: string): void {
    if (this.#socket?.readyState === OPEN && !this.#outbox.includes(frame)) this.#socket.send(frame)
  }

  /** Ends the connection for good; no reconnect follows. */
  close (failure: ConnectionFailure = { code: 'client_closed', message: 'closed by the client' }): void {
    if (this.#status.state === 'closed') return
    clearTimeout(this.#timer)
    this.#ready = false
    const socket = this.#socket
    this.#socket = undefined
    if (socket !== undefined) {
      detach(socket)
      try { socket.close(1000, 'client closed') } catch { /* already closing */ }
    }
    this.#setStatus({ state: 'closed', attempt: this.#status.attempt, failure })
  }

  #dial (): void {
    this.#dials++
    const attempt = this.#status.attempt
    this.#setStatus({ state: 'connecting', attempt })
    let socket: WebSocketLike
    try {
      socket = new this.#options.WebSocket(this.#options.url(), this.#options.protocols)
    } catch (err) {
      // A malformed URL or protocol: no later attempt can do better.
      this.close({ code: 'invalid_url', message: err instanceof Error ? err.message : String(err) })
      return
    }
    this.#socket = socket
    let opened = false
    const timeout = setTimeout(() => this.#closed(socket, 1006, 'connect timeout', false), this.#options.reconnect.connectTimeoutMs)
    socket.onopen = () => {
      opened = true
      clearTimeout(timeout)
    }
    socket.onmessage = (event: MessageEventLike) => { if (this.#socket === socket) this.#options.onMessage(event.data) }
    socket.onerror = () => { /* a close event follows */ }
    socket.onclose = (event: CloseEventLike) => {
      clearTimeout(timeout)
      this.#closed(socket, event.code, event.reason, opened)
    }
  }

  #closed (socket: WebSocketLike, code: number, reason: string, opened: boolean): void {
    if (this.#socket !== socket) return
    detach(socket)
    try { socket.close() } catch { /* already closed */ }
    this.#socket = undefined
    this.#ready = false
    const action = closeAction(code)
    if (action === 'stop') {
      this.close({ code: 'connection_closed', message: reason === '' ? `the gateway closed the connection (${code})` : reason, closeCode: code })
      return
    }
    const attempt = this.#status.attempt + 1
    if (attempt > this.#options.reconnect.maxAttempts) {
      this.close({ code: 'retries_exhausted', message: `gave up after ${attempt - 1} attempts`, closeCode: code })
      return
    }
    const dial = this.#dials
    const schedule = (): void => {
      if (this.#status.state === 'closed' || dial !== this.#dials) return
      const { reconnect, random } = this.#options
      let delay = backoffDelay(attempt - 1, reconnect, random)
      if (action === 'later') delay = Math.max(delay, reconnect.tryLaterDelayMs)
      this.#setStatus({ state: 'reconnecting', attempt, retryInMs: delay, code, ...(reason === '' ? {} : { reason }) })
      this.#timer = setTimeout(() => this.#dial(), delay)
    }
    if (opened) return schedule()
    // Refused before the upgrade: maybe the key. Ask over HTTP, where the status is visible.
    this.#setStatus({ state: 'reconnecting', attempt, code, ...(reason === '' ? {} : { reason }) })
    this.#options.isUnauthorized().then((unauthorized) => {
      if (!unauthorized || dial !== this.#dials) return schedule()
      this.close({ code: 'invalid_api_key', message: 'the gateway refused the API key', closeCode: code })
    }, schedule)
  }

  #flush (): void {
    const socket = this.#socket
    while (this.#outbox.length > 0 && socket?.readyState === OPEN) socket.send(this.#outbox.shift() ?? '')
  }

  #setStatus (status: ConnectionStatus): void {
    this.#status = status
    this.#options.onStatus(status)
  }
}

function detach (socket: WebSocketLike): void {
  socket.onopen = null
  socket.onmessage = null
  socket.onclose = null
  socket.onerror = () => {} // a late error must not become an unhandled 'error' event (ws)
}
