/**
 * What a close code tells a client to do (README "Close codes", protocol/close-codes.ts) and how
 * long to wait before the next attempt: exponential backoff with full jitter.
 */

/** `retry`: reconnect after backoff. `later`: reconnect after a longer wait. `stop`: never reconnect. */
export type CloseAction = 'retry' | 'later' | 'stop'

/** Codes after which reconnecting cannot help: the client or its credentials must change. */
const FINAL_CODES: ReadonlySet<number> = new Set([
  1000, // normal closure: someone ended the session on purpose
  1002, // protocol error
  1003, // unsupported data
  1007, // invalid payload
  1008, // policy violation (e.g. authentication)
  1009, // frame over MAX_FRAME_BYTES
  1010, // mandatory extension
  4001, // unauthorized
  4003 // forbidden
])

/** Decides what a client does after the server (or the network) closed the socket with `code`. */
export function closeAction (code: number): CloseAction {
  if (code === 1013) return 'later' // try again later: the instance is full
  if (FINAL_CODES.has(code)) return 'stop'
  if (code >= 4500 && code <= 4999) return 'stop' // 4500–4999: must not reconnect
  return 'retry' // 1001, 1005, 1006, 1011, 1012, 1014, 4000–4499 and anything unknown
}

export interface BackoffOptions {
  /** Ceiling of the first wait, in ms. */
  readonly baseDelayMs: number
  /** Ceiling of any wait, in ms. */
  readonly maxDelayMs: number
}

/**
 * The wait before attempt `attempt` (0 for the first retry): a random point in
 * [0, min(maxDelayMs, baseDelayMs · 2^attempt)] ("full jitter"), so that a thousand clients
 * dropped by one restart do not come back in step. `random` returns [0, 1).
 */
export function backoffDelay (attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * ceiling)
}
