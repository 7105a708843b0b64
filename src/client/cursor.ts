/**
 * Event cursors: a conversation event's `event_id` (`ev_<epoch>_<seq>`) names its place in the
 * conversation's log. The client keeps the last one it saw, resumes after it, and drops an
 * event it already has (the same epoch and a sequence number not past the last).
 */

interface Cursor { readonly id: string, readonly epoch: string, readonly seq: number }

const CURSOR = /^ev_([a-z0-9]+)_(\d{1,15})$/

/** The cursor an event id names, or undefined for session-level ids (which are not cursors). */
export function parseCursor (eventId: string): Cursor | undefined {
  const match = CURSOR.exec(eventId)
  return match === null ? undefined : { id: eventId, epoch: match[1] ?? '', seq: Number(match[2]) }
}

export class CursorTracker {
  #last: Cursor | undefined

  /** Starts from a cursor the application kept (e.g. across a page load). */
  constructor (initial?: string) {
    this.#last = initial === undefined ? undefined : parseCursor(initial)
  }

  /** The last cursor seen: resume after it. */
  get lastEventId (): string | undefined {
    return this.#last?.id
  }

  /**
   * Whether an event is new. A cursor event advances the tracker; one at or before the last
   * cursor of the same epoch is a duplicate. A new epoch (a recreated log) starts over.
   */
  accept (eventId: string): boolean {
    const cursor = parseCursor(eventId)
    if (cursor === undefined) return true
    const last = this.#last
    if (last !== undefined && last.epoch === cursor.epoch && cursor.seq <= last.seq) return false
    this.#last = cursor
    return true
  }
}
