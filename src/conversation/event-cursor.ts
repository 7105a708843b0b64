/**
 * Delivers a conversation's log events to one socket exactly once and in order, whatever
 * mix of sources they come from: the local writer's commits, the live feed, log reads. It
 * keeps the last delivered seq; a duplicate is dropped, a gap is filled from the log first
 * (Centrifugo's PubSubSync: buffer live messages, read history, merge by sequence number).
 */
import { gatewayError } from '../errors.js'
import type { LogEntry } from '../store/conversation-store.js'

export interface EventCursorOptions {
  /** Sends one stamped event to the client. */
  readonly send: (event: string) => void
  /** Log entries after `seq`. */
  readonly readLog: (afterSeq: number) => Promise<LogEntry[]>
  /** A fill failed (the store is down): the session decides what to tell the client. */
  readonly onFillError: (err: unknown) => void
}

export class EventCursor {
  readonly #options: EventCursorOptions
  #seq = 0
  /** A log read is in flight: pushes wait (true until `start`). */
  #filling = true
  /** Holds placed by `hold()`: pushes wait. */
  #holds = 0
  readonly #pending: Array<{ firstSeq: number, events: readonly string[] }> = []

  /** Starts holding: events are buffered until `start(seq)` says where the client is. */
  constructor (options: EventCursorOptions) {
    this.#options = options
  }

  /** The client has everything up to `seq`: deliver what follows, from the log and the buffer. */
  start (seq: number): void {
    this.#seq = seq
    this.#fill()
  }

  /** Pauses delivery (events are buffered) while the caller commits events it already showed. */
  hold (): void {
    this.#holds++
  }

  /**
   * Ends a hold. `skip`: the range this socket already got unsequenced (degraded mode); if the
   * cursor stands right before it, it moves past it so the log's copies are not sent again.
   */
  release (skip?: { readonly firstSeq: number, readonly lastSeq: number }): void {
    this.#holds = Math.max(0, this.#holds - 1)
    if (skip !== undefined && this.#seq === skip.firstSeq - 1) this.#seq = skip.lastSeq
    this.#drain()
  }

  /** Offers a run of consecutive events starting at `firstSeq`. */
  push (firstSeq: number, events: readonly string[]): void {
    if (this.#filling || this.#holds > 0) {
      this.#pending.push({ firstSeq, events })
      return
    }
    // Already delivered (the feed's copy of a local commit, or the other way round): nothing to do.
    if (firstSeq + events.length - 1 <= this.#seq) return
    for (const [i, event] of events.entries()) {
      const seq = firstSeq + i
      if (seq <= this.#seq) continue
      if (seq > this.#seq + 1) {
        // A gap: something was missed. Keep the rest, read the log from where we are.
        this.#pending.push({ firstSeq: seq, events: events.slice(i) })
        this.#fill()
        return
      }
      this.#seq = seq
      this.#options.send(event)
    }
  }

  /** The feed may have lost messages: catch up from the log. */
  resync (): void {
    if (!this.#filling) this.#fill()
  }

  #drain (): void {
    if (this.#filling || this.#holds > 0) return
    for (const batch of this.#pending.splice(0)) this.push(batch.firstSeq, batch.events)
  }

  #fill (): void {
    this.#filling = true
    this.#options.readLog(this.#seq).then((entries) => {
      this.#filling = false
      const first = entries[0]
      if (first !== undefined && first.seq > this.#seq + 1) {
        // The log was trimmed past our cursor: say so, and carry on from what it still has.
        this.#options.onFillError(gatewayError('GW_ERR_RESUME_CURSOR_EXPIRED', [String(this.#seq)]))
        this.#seq = first.seq - 1
      }
      // The log's entries go first; duplicates among the buffered live batches are dropped by seq.
      this.#pending.unshift(...entries.map((entry) => ({ firstSeq: entry.seq, events: [entry.event] })))
      this.#drain()
    }, (err: unknown) => {
      this.#filling = false
      this.#options.onFillError(err)
      if (this.#holds > 0) return
      // Deliver what is contiguous; keep the rest for the next push or resync to retry (no loop).
      const waiting = this.#pending.splice(0)
      for (const batch of waiting) {
        if (batch.firstSeq <= this.#seq + 1) this.push(batch.firstSeq, batch.events)
        else this.#pending.push(batch)
      }
    })
  }
}
