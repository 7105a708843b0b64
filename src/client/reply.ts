/**
 * One turn's reply: every response the assistant gives to one `response.create`, including the
 * follow-ups after tool calls. Its text deltas are an async iterable; `done` settles once.
 */
import type { ServerEvent } from '../protocol/events.js'

/** A response as `response.created` / `response.done` carry it. */
export type ResponseResource = Extract<ServerEvent, { type: 'response.done' }>['response']

export type ReplyStatus = 'pending' | 'in_progress' | 'completed' | 'cancelled' | 'failed' | 'incomplete'
export type FinalStatus = Exclude<ReplyStatus, 'pending' | 'in_progress'>

/** Why a reply did not complete: a Realtime error code and its message. */
export interface ReplyErrorInfo {
  readonly code: string
  readonly message: string
}

export interface ReplyResult {
  readonly status: FinalStatus
  /** The whole text of the turn's assistant messages. */
  readonly text: string
  /** Every response of the turn, as its `response.done` carried it. */
  readonly responses: readonly ResponseResource[]
  readonly error?: ReplyErrorInfo
}

/**
 * Why a response did not complete, from its `status_details`: the error's code and message (the
 * gateway adds `message`), or the reason. Undefined when it gives neither. The chat page and the
 * CLI word a failed response with it too.
 */
export function responseError (response: ResponseResource): ReplyErrorInfo | undefined {
  const details = response.status_details
  const error = details?.error
  const reason = details?.reason
  if (error === undefined && reason === undefined) return undefined
  const message: unknown = error === undefined ? undefined : Reflect.get(error, 'message')
  const code = error?.code ?? reason ?? response.status ?? 'failed'
  return { code, message: typeof message === 'string' ? message : code }
}

/** Thrown by a reply's iterator when the reply fails. */
export class ReplyError extends Error {
  readonly code: string
  constructor (info: ReplyErrorInfo) {
    super(info.message)
    this.name = 'ReplyError'
    this.code = info.code
  }
}

/** What the client does to a reply as events arrive. */
export interface ReplyControl {
  readonly reply: Reply
  /** A response of this turn started. */
  started (responseId: string): void
  text (delta: string): void
  /** A response of this turn ended (a turn with tool calls has several). */
  responseDone (response: ResponseResource): void
  /** The turn is over. Later calls are ignored. */
  finish (status: FinalStatus, error?: ReplyErrorInfo): void
}

export interface ReplyInit {
  /** The turn tag (`response.metadata.tw_turn`), or the response id of an untagged response. */
  readonly turnId: string
  /** Started by this client (its `send()`, or before a reload with the same clientId). */
  readonly mine: boolean
  /** The id of the user message this turn answers, when this client sent it. */
  readonly inputItemId?: string
  /** Asks the client to cancel this reply. */
  readonly cancel: (reply: Reply) => void
}

export class Reply implements AsyncIterable<string> {
  readonly turnId: string
  readonly mine: boolean
  /** The id of the user message this turn answers, when this client sent it (render it at once). */
  readonly inputItemId: string | undefined
  /** Settles when the turn is over; never rejects. */
  readonly done: Promise<ReplyResult>
  readonly #deltas: string[] = []
  readonly #responses: ResponseResource[] = []
  readonly #responseIds: string[] = []
  readonly #waiters = new Set<() => void>()
  readonly #cancel: (reply: Reply) => void
  #status: ReplyStatus = 'pending'
  #text = ''
  #error: ReplyErrorInfo | undefined
  #resolve!: (result: ReplyResult) => void

  private constructor (init: ReplyInit) {
    this.turnId = init.turnId
    this.mine = init.mine
    this.inputItemId = init.inputItemId
    this.#cancel = init.cancel
    this.done = new Promise((resolve) => { this.#resolve = resolve })
  }

  /** A reply and the handle the client drives it with. */
  static create (init: ReplyInit): ReplyControl {
    const reply = new Reply(init)
    return {
      reply,
      started: (responseId) => {
        if (reply.#final) return
        reply.#responseIds.push(responseId)
        reply.#status = 'in_progress'
      },
      text: (delta) => {
        if (reply.#final) return
        reply.#deltas.push(delta)
        reply.#text += delta
        reply.#wake()
      },
      responseDone: (response) => { if (!reply.#final) reply.#responses.push(response) },
      finish: (status, error) => {
        if (reply.#final) return
        reply.#status = status
        reply.#error = error
        reply.#resolve({ status, text: reply.#text, responses: [...reply.#responses], ...(error === undefined ? {} : { error }) })
        reply.#wake()
      }
    }
  }

  /** `pending` until its first response starts, then `in_progress`, then how it ended. */
  get status (): ReplyStatus { return this.#status }
  /** The text so far. */
  get text (): string { return this.#text }
  /** The ids of the turn's responses so far, oldest first. */
  get responseIds (): readonly string[] { return this.#responseIds }
  /** The latest response of the turn, if one started. */
  get responseId (): string | undefined { return this.#responseIds.at(-1) }
  get error (): ReplyErrorInfo | undefined { return this.#error }

  /** Stops the reply (wherever it is generated); it ends `cancelled`. */
  cancel (): void {
    if (!this.#final) this.#cancel(this)
  }

  /**
   * The text deltas, from the first (each iteration starts at the beginning). Ends when the
   * turn ends; throws a {@link ReplyError} if it failed.
   */
  async * [Symbol.asyncIterator] (): AsyncIterator<string> {
    let index = 0
    for (;;) {
      while (index < this.#deltas.length) yield this.#deltas[index++] ?? ''
      if (this.#final) break
      await new Promise<void>((resolve) => this.#waiters.add(resolve))
    }
    if (this.#status === 'failed') throw new ReplyError(this.#error ?? { code: 'failed', message: 'The reply failed' })
  }

  get #final (): boolean {
    return this.#status !== 'pending' && this.#status !== 'in_progress'
  }

  #wake (): void {
    for (const wake of this.#waiters) wake()
    this.#waiters.clear()
  }
}
