/**
 * The registry of live sessions on this instance: enforces MAX_SESSIONS and closes every
 * session with 1012 on shutdown so clients reconnect elsewhere.
 */
import { CloseCodes } from '../protocol/close-codes.js'
import type { Session } from './session.js'

export class SessionManager {
  readonly #sessions = new Set<Session>()
  readonly #maxSessions: number
  #draining = false

  constructor (maxSessions: number) {
    this.#maxSessions = maxSessions
  }

  get size (): number {
    return this.#sessions.size
  }

  /** True once shutdown began: /readyz reports 503 and new sessions are refused. */
  get draining (): boolean {
    return this.#draining
  }

  /** Whether one more session may open now. */
  hasRoom (): boolean {
    return !this.#draining && this.#sessions.size < this.#maxSessions
  }

  add (session: Session): void {
    this.#sessions.add(session)
  }

  remove (session: Session): void {
    this.#sessions.delete(session)
  }

  /** Shutdown begins: readiness fails and new sessions are refused; open ones go on for now. */
  beginDrain (): void {
    this.#draining = true
  }

  /** Events received before the drain, still being handled (a `response.create` taking its lease). */
  readonly #handling: Array<Promise<void>> = []

  /** Closes every session with 1012 (service restart); the events they already received are still handled. */
  drain (): void {
    this.#draining = true
    for (const session of this.#sessions) {
      session.close(CloseCodes.SERVICE_RESTART, 'server shutting down')
      this.#handling.push(session.settled())
    }
  }

  /** Resolves once the drained sessions handled what they had received, or after `graceMs`. */
  async settled (graceMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs).unref() })
    await Promise.race([Promise.allSettled(this.#handling), grace])
    clearTimeout(timer)
  }
}
