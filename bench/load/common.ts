/**
 * Pieces of the in-process load benchmark (run.ts): statistics, the per-mode recorder,
 * the plain `ws` Realtime client that drives one gateway session turn by turn, and the JSON
 * writer. Nothing here starts servers.
 */
import { once } from 'node:events'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { round3, summarize } from '../lib/stats.js'

export const MODEL = 'gpt-4o'
/** Longest a single turn (or the connect phase) may take before it counts as an error. */
export const TURN_TIMEOUT_MS = 30_000

export class UsageError extends Error {}

/** Parses an integer flag value in min..max, or throws a UsageError naming the flag. */
export function intFlag (name: string, raw: string, min: number, max: number): number {
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name} must be an integer in ${min}..${max} (got ${JSON.stringify(raw)})`)
  return value
}

// ---------------------------------------------------------------------------------------------
// Statistics (shared with the harness)

export { finite, mb, percentile, round3, summarize, type Summary } from '../lib/stats.js'

// ---------------------------------------------------------------------------------------------
// Turns

export interface TurnSample {
  /** Request start (SDK call / `response.create` sent) → first non-empty text delta. */
  ttftMs: number
  /** Gaps between consecutive text deltas of the turn. */
  gapsMs: number[]
  /** Text deltas received in the turn. */
  deltas: number
}

export interface BenchSession {
  turn (turn: number): Promise<TurnSample>
}

export const userText = (session: number, turn: number): string => `Benchmark session ${session}, turn ${turn}: please reply.`

/** What one mode (baseline, gateway, …) accumulated over the measured rounds. */
export class Recorder {
  readonly ttftMs: number[] = []
  readonly interTokenMs: number[] = []
  turnsOk = 0
  deltas = 0
  errors = 0
  readonly errorSamples: string[] = []
  /** Wall time of the measured phases, in ms. */
  phaseMs = 0

  record (results: ReadonlyArray<PromiseSettledResult<TurnSample>>): void {
    for (const result of results) {
      if (result.status === 'fulfilled') {
        this.turnsOk++
        this.deltas += result.value.deltas
        this.ttftMs.push(result.value.ttftMs)
        this.interTokenMs.push(...result.value.gapsMs)
      } else {
        this.errors++
        if (this.errorSamples.length < 5) this.errorSamples.push(result.reason instanceof Error ? result.reason.message : String(result.reason))
      }
    }
  }

  report (): Record<string, unknown> {
    return {
      turnsOk: this.turnsOk,
      errors: this.errors,
      ...(this.errorSamples.length > 0 ? { errorSamples: this.errorSamples } : {}),
      ttftMs: summarize(this.ttftMs),
      interTokenMs: summarize(this.interTokenMs),
      phaseSeconds: round3(this.phaseMs / 1000)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The Realtime client

export interface ServerEvent {
  type: string
  [key: string]: unknown
}

/** One Realtime session over a plain `ws` socket. */
export class GatewaySession implements BenchSession {
  sent = 0
  received = 0
  /** `response.output_text.delta` events received over the session's life. */
  textDeltas = 0
  #onEvent: ((event: ServerEvent, at: number) => void) | undefined
  #onClose: (() => void) | undefined

  private constructor (private readonly index: number, private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const at = performance.now()
      this.received++
      const event = JSON.parse(data.toString('utf8')) as ServerEvent
      if (event.type === 'response.output_text.delta') this.textDeltas++
      this.#onEvent?.(event, at)
    })
    ws.on('close', () => this.#onClose?.())
    ws.on('error', () => { /* surfaced through 'close' */ })
  }

  /** Connects and waits for `session.created`. */
  static async open (index: number, url: string): Promise<{ session: GatewaySession, connectMs: number }> {
    const start = performance.now()
    const ws = new WebSocket(url)
    const session = new GatewaySession(index, ws)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error('gateway: no session.created in time')), TURN_TIMEOUT_MS)
      const done = (err?: Error): void => {
        clearTimeout(timer)
        session.#onEvent = undefined
        session.#onClose = undefined
        if (err === undefined) resolve()
        else reject(err)
      }
      session.#onEvent = (event) => {
        if (event.type === 'session.created') done()
        else if (event.type === 'error') done(new Error(`gateway: error before session.created: ${JSON.stringify(event['error'])}`))
      }
      session.#onClose = () => done(new Error('gateway: socket closed before session.created'))
    })
    return { session, connectMs: performance.now() - start }
  }

  #send (event: Record<string, unknown>): void {
    this.sent++
    this.ws.send(JSON.stringify(event))
  }

  turn (turn: number): Promise<TurnSample> {
    return new Promise((resolve, reject) => {
      let start = 0
      let first: number | undefined
      let last = 0
      let deltas = 0
      const gapsMs: number[] = []
      const timer = setTimeout(() => done(new Error('gateway: turn timed out')), TURN_TIMEOUT_MS)
      const done = (err?: Error): void => {
        clearTimeout(timer)
        this.#onEvent = undefined
        this.#onClose = undefined
        if (err !== undefined) reject(err)
        else if (first === undefined) reject(new Error('gateway: response.done without a text delta'))
        else resolve({ ttftMs: first - start, gapsMs, deltas })
      }
      this.#onEvent = (event, at) => {
        switch (event.type) {
          case 'response.output_text.delta':
            deltas++
            if (first === undefined) first = at
            else gapsMs.push(at - last)
            last = at
            break
          case 'response.done': {
            const status = (event['response'] as { status?: string } | undefined)?.status
            done(status === 'completed' ? undefined : new Error(`gateway: response ${String(status)}`))
            break
          }
          case 'error':
            done(new Error(`gateway: error event ${JSON.stringify(event['error'])}`))
            break
        }
      }
      this.#onClose = () => done(new Error('gateway: socket closed mid-turn'))
      this.#send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: userText(this.index, turn) }] } })
      start = performance.now()
      this.#send({ type: 'response.create' })
    })
  }

  async close (): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return
    const closed = once(this.ws, 'close')
    this.ws.close(1000, 'bench done')
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2000).unref())])
  }
}

// ---------------------------------------------------------------------------------------------
// Output

/** Writes `value` as pretty JSON to `path` atomically (a `*.tmp.json` sibling, then rename). */
export function writeJson (path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path.replace(/\.json$/, '')}.tmp.json`
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`)
  renameSync(tmp, path)
}
