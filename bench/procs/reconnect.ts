/**
 * The reconnect trial: a client cuts its socket to instance A in the middle of a reply and
 * resumes on instance B (same Redis) with `conversation_id` + `resume_after`; timed from
 * `new WebSocket()` to `session.created` and to the first replayed `response.*` event, and
 * checked for duplicate event_ids and for text-before + text-after === the whole reply.
 */
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import type { Expect, ReconnectTrial, ReconnectVariant } from '../lib/protocol.js'
import { TURN_TIMEOUT_MS } from './clients.js'

interface Stamped { event: { type: string, [key: string]: unknown }, at: number }

/** A raw Realtime socket that keeps every event with its arrival time. */
class EventSocket {
  readonly events: Stamped[] = []
  readonly ws: WebSocket
  #cut = false
  #closed = false
  readonly #waiters = new Set<() => void>()

  constructor (url: string, private readonly onEvent?: (stamped: Stamped) => void) {
    this.ws = new WebSocket(url, { perMessageDeflate: false })
    this.ws.on('message', (data: Buffer) => {
      if (this.#cut) return
      const stamped = { event: JSON.parse(data.toString('utf8')) as Stamped['event'], at: performance.now() }
      this.events.push(stamped)
      this.onEvent?.(stamped)
      this.#wake()
    })
    this.ws.on('close', () => { this.#closed = true; this.#wake() })
    this.ws.on('error', () => { /* surfaced through 'close' */ })
  }

  #wake (): void {
    for (const wake of [...this.#waiters]) wake()
  }

  /** The first event from index `from` on that matches, with its index. */
  async waitFor (what: string, match: (event: Stamped['event']) => boolean, from = 0): Promise<Stamped & { index: number }> {
    const deadline = performance.now() + TURN_TIMEOUT_MS
    for (;;) {
      const index = this.events.findIndex((s, i) => i >= from && match(s.event))
      const found = this.events[index]
      if (found !== undefined) return { ...found, index }
      if (this.#closed || this.#cut) throw new Error(`socket closed before ${what}`)
      if (performance.now() > deadline) throw new Error(`no ${what} within ${TURN_TIMEOUT_MS} ms`)
      await new Promise<void>((resolve) => {
        const wake = (): void => { clearTimeout(timer); this.#waiters.delete(wake); resolve() }
        const timer = setTimeout(wake, Math.max(1, deadline - performance.now()))
        this.#waiters.add(wake)
      })
    }
  }

  /** Drops the connection without a close handshake; later frames are ignored. */
  cut (): void {
    this.#cut = true
    this.ws.terminate()
  }

  close (): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000, 'bench done')
    else this.ws.terminate()
  }
}

const isLogEvent = (s: Stamped): boolean => typeof s.event['event_id'] === 'string' && String(s.event['event_id']).startsWith('ev_')
const textOf = (events: readonly Stamped[]): string => events
  .filter((s) => s.event.type === 'response.output_text.delta')
  .map((s) => String(s.event['delta']))
  .join('')
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function runTrial (urlA: string, urlB: string, offlineMs: number, cutAfter: number, expect: Expect): Promise<ReconnectTrial> {
  let deltas = 0
  let cursor: string | undefined
  const onA = new EventSocket(urlA, (s) => {
    if (s.event.type !== 'response.output_text.delta') return
    if (++deltas === cutAfter) {
      cursor = String(s.event['event_id'])
      onA.cut()
    }
  })
  let onB: EventSocket | undefined
  try {
    const created = await onA.waitFor('session.created', (e) => e.type === 'session.created')
    const conversationId = (created.event['session'] as { conversation_id?: string } | undefined)?.conversation_id
    if (conversationId === undefined) throw new Error('session.created without conversation_id')
    onA.ws.send(JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Reconnect trial: please reply.' }] } }))
    onA.ws.send(JSON.stringify({ type: 'response.create' }))
    await onA.waitFor(`delta ${cutAfter}`, () => cursor !== undefined).catch((err: unknown) => {
      if (cursor === undefined) throw err
    })
    if (cursor === undefined) throw new Error('no cursor')
    const before = onA.events
    if (offlineMs > 0) await sleep(offlineMs)

    const start = performance.now()
    onB = new EventSocket(`${urlB}&conversation_id=${encodeURIComponent(conversationId)}&resume_after=${encodeURIComponent(cursor)}`)
    const sessionCreated = await onB.waitFor('session.created', (e) => e.type === 'session.created' || e.type === 'error')
    if (sessionCreated.event.type === 'error') throw new Error(`error before session.created: ${JSON.stringify(sessionCreated.event['error'])}`)
    const first = await onB.waitFor('a replayed response.* event', (e) => e.type.startsWith('response.') || e.type === 'error', sessionCreated.index + 1)
    if (first.event.type === 'error') throw new Error(`error event: ${JSON.stringify(first.event['error'])}`)
    const done = await onB.waitFor('response.done', (e) => e.type === 'response.done' || e.type === 'error', first.index)
    if (done.event.type === 'error') throw new Error(`error event: ${JSON.stringify(done.event['error'])}`)
    const after = onB.events.slice(sessionCreated.index + 1, done.index + 1)
    const ids = [...before, ...after].filter(isLogEvent).map((s) => String(s.event['event_id']))
    return {
      sessionCreatedMs: sessionCreated.at - start,
      firstReplayMs: first.at - start,
      firstReplayType: first.event.type,
      duplicateIds: ids.length - new Set(ids).size,
      textMatches: expect.text === undefined || textOf(before) + textOf(after) === expect.text,
      status: String((done.event['response'] as { status?: string } | undefined)?.status)
    }
  } finally {
    onA.close()
    onB?.close()
  }
}

/**
 * Runs `trials` measured trials per variant (one per `offlineMs`: the pause between the cut
 * and the reconnect), after one discarded warm-up trial; variants take turns, in alternating
 * order, so machine noise lands on each alike.
 */
export async function reconnectTrials (
  job: { urlA: string, urlB: string, trials: number, offlineMs: number[], cutAfter: number, expect: Expect },
  progress: (line: string) => void
): Promise<ReconnectVariant[]> {
  const variants: ReconnectVariant[] = job.offlineMs.map((offlineMs) => ({ offlineMs, trials: [], errors: 0, errorSamples: [] }))
  for (let trial = 0; trial <= job.trials; trial++) {
    for (const variant of trial % 2 === 0 ? variants : [...variants].reverse()) {
      try {
        const outcome = await runTrial(job.urlA, job.urlB, variant.offlineMs, job.cutAfter, job.expect)
        if (trial > 0) variant.trials.push(outcome)
      } catch (err) {
        if (trial === 0) continue
        variant.errors++
        if (variant.errorSamples.length < 5) variant.errorSamples.push(err instanceof Error ? err.message : String(err))
      }
    }
    if (trial > 0 && trial % 10 === 0) progress(`reconnect trials ${trial}/${job.trials}`)
  }
  return variants
}
