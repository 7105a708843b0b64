/**
 * The load generator's two kinds of session, each driving one conversation turn by turn:
 * a Realtime WebSocket (the gateway, the bare relay) and the `openai` SDK's chat stream
 * (direct to the simulator: the floor; or through the peer). Both time a turn from just before
 * the user's message is sent to the first text delta, then every gap between deltas.
 *
 * Frames are not JSON-parsed unless the text is checked: the event type is read off the
 * frame's start, so the client stays cheap at tens of thousands of frames per second.
 */
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import OpenAI from 'openai'
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import WebSocket from 'ws'
import type { Expect, TargetSpec } from '../lib/protocol.js'

/** Longest a turn, or a connect, may take before it counts as an error. */
export const TURN_TIMEOUT_MS = 30_000
export const MODEL = 'gpt-4o'

export interface TurnOptions {
  readonly recordGaps: boolean
  /** A gap at least this long counts as a stall. */
  readonly stallMs: number
  readonly expect: Expect
}

export interface TurnSample {
  ttftMs: number
  gapsMs: number[]
  maxGapMs: number
  stalls: number
  deltas: number
  /** Delta count (and text, when checked) as expected. */
  complete: boolean
}

export interface BenchSession {
  /** Turns run since the last rotation. */
  readonly turns: number
  turn (options: TurnOptions): Promise<TurnSample>
  /** Starts a fresh conversation (bounds the history each turn sends upstream). */
  rotate (): Promise<void>
  close (): Promise<void>
}

const userText = (turn: number): string => `Benchmark turn ${turn}: please reply.`

/** Accumulates one turn's deltas. */
class TurnClock {
  readonly #start = performance.now()
  #first: number | undefined
  #last = 0
  readonly gapsMs: number[] = []
  maxGapMs = 0
  stalls = 0
  deltas = 0
  text = ''

  constructor (private readonly options: TurnOptions) {}

  delta (at: number): void {
    this.deltas++
    if (this.#first === undefined) {
      this.#first = at
    } else {
      const gap = at - this.#last
      if (this.options.recordGaps) this.gapsMs.push(gap)
      if (gap > this.maxGapMs) this.maxGapMs = gap
      if (gap >= this.options.stallMs) this.stalls++
    }
    this.#last = at
  }

  sample (): TurnSample {
    if (this.#first === undefined) throw new Error('the reply carried no text delta')
    const { expect } = this.options
    const complete = this.deltas === expect.deltas && (expect.text === undefined || this.text === expect.text)
    return { ttftMs: this.#first - this.#start, gapsMs: this.gapsMs, maxGapMs: this.maxGapMs, stalls: this.stalls, deltas: this.deltas, complete }
  }
}

/** The `"type"` of a server frame: the first `"type":"…"` in it is the event's own (it comes before any nested object). */
export function frameType (frame: string): string {
  const at = frame.indexOf('"type":"')
  if (at === -1) return ''
  const start = at + 8
  return frame.slice(start, frame.indexOf('"', start))
}

/** One Realtime conversation over a plain `ws` socket. */
export class RealtimeSession implements BenchSession {
  turns = 0
  #ws: WebSocket
  #onFrame: ((frame: string, type: string, at: number) => void) | undefined
  #onClose: (() => void) | undefined

  private constructor (private readonly url: string, ws: WebSocket) {
    this.#ws = ws
    this.#attach(ws)
  }

  /** Connects and waits for `session.created`; resolves with the time it took. */
  static async open (url: string): Promise<{ session: RealtimeSession, connectMs: number }> {
    const start = performance.now()
    const session = new RealtimeSession(url, new WebSocket(url, { perMessageDeflate: false }))
    await session.#ready()
    return { session, connectMs: performance.now() - start }
  }

  #attach (ws: WebSocket): void {
    ws.on('message', (data: Buffer) => {
      const at = performance.now()
      const frame = data.toString('utf8')
      this.#onFrame?.(frame, frameType(frame), at)
    })
    ws.on('close', () => this.#onClose?.())
    ws.on('error', () => { /* surfaced through 'close' */ })
  }

  #ready (): Promise<void> {
    return this.#await((type, frame, done) => {
      if (type === 'session.created') done()
      else if (type === 'error') done(new Error(`error before session.created: ${frame.slice(0, 300)}`))
    }, 'session.created')
  }

  /** Runs `onFrame` until it calls `done`; rejects on timeout or close. */
  #await (onFrame: (type: string, frame: string, done: (err?: Error) => void, at: number) => void, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no ${what} within ${TURN_TIMEOUT_MS} ms`)), TURN_TIMEOUT_MS)
      const done = (err?: Error): void => {
        clearTimeout(timer)
        this.#onFrame = undefined
        this.#onClose = undefined
        if (err === undefined) resolve()
        else reject(err)
      }
      this.#onFrame = (frame, type, at) => onFrame(type, frame, done, at)
      this.#onClose = () => done(new Error(`socket closed before ${what}`))
    })
  }

  async turn (options: TurnOptions): Promise<TurnSample> {
    this.turns++
    let failure: Error | undefined
    const checkText = options.expect.text !== undefined
    const clock = new TurnClock(options)
    const finished = this.#await((type, frame, done, at) => {
      if (type === 'response.output_text.delta') {
        clock.delta(at)
        if (checkText) clock.text += (JSON.parse(frame) as { delta: string }).delta
      } else if (type === 'response.done') {
        const status = (JSON.parse(frame) as { response?: { status?: string } }).response?.status
        if (status !== 'completed') failure = new Error(`response ${String(status)}`)
        done()
      } else if (type === 'error') {
        done(new Error(`error event: ${frame.slice(0, 300)}`))
      }
    }, 'response.done')
    this.#ws.send(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":${JSON.stringify(userText(this.turns))}}]}}`)
    this.#ws.send('{"type":"response.create"}')
    await finished
    if (failure !== undefined) throw failure
    return clock.sample()
  }

  async rotate (): Promise<void> {
    await this.close()
    this.#ws = new WebSocket(this.url, { perMessageDeflate: false })
    this.#attach(this.#ws)
    this.turns = 0
    await this.#ready()
  }

  async close (): Promise<void> {
    const ws = this.#ws
    if (ws.readyState === WebSocket.CLOSED) return
    const closed = once(ws, 'close')
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate()
    else ws.close(1000, 'bench done')
    const timedOut = await Promise.race([closed.then(() => false), new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 2000).unref())])
    if (timedOut) ws.terminate()
  }
}

const sdkClients = new Map<string, OpenAI>()

/** One SDK client (one connection pool) per upstream, shared by its sessions, as a gateway shares one. */
function sdkClient (target: TargetSpec): OpenAI {
  const key = JSON.stringify([target.url, target.headers ?? {}])
  let client = sdkClients.get(key)
  if (client === undefined) {
    client = new OpenAI({
      baseURL: target.url,
      apiKey: 'sk-test-not-real',
      maxRetries: 0,
      timeout: TURN_TIMEOUT_MS,
      ...(target.headers === undefined ? {} : { defaultHeaders: { ...target.headers } })
    })
    sdkClients.set(key, client)
  }
  return client
}

/** A conversation driven with the SDK, carrying its own history as the gateway does. */
export class SdkSession implements BenchSession {
  turns = 0
  #messages: ChatCompletionMessageParam[] = []
  readonly #client: OpenAI

  constructor (target: TargetSpec) {
    this.#client = sdkClient(target)
  }

  async turn (options: TurnOptions): Promise<TurnSample> {
    this.turns++
    this.#messages.push({ role: 'user', content: userText(this.turns) })
    const clock = new TurnClock(options)
    const stream = await this.#client.chat.completions.create(
      { model: MODEL, messages: this.#messages, stream: true, stream_options: { include_usage: true } },
      { signal: AbortSignal.timeout(TURN_TIMEOUT_MS) }
    )
    let finish: string | null | undefined
    for await (const chunk of stream) {
      const choice = chunk.choices[0]
      if (choice?.finish_reason != null) finish = choice.finish_reason
      const content = choice?.delta.content
      if (typeof content !== 'string' || content === '') continue
      clock.delta(performance.now())
      clock.text += content
    }
    if (finish !== 'stop') throw new Error(`stream ended with finish_reason ${String(finish)}`)
    this.#messages.push({ role: 'assistant', content: clock.text })
    return clock.sample()
  }

  async rotate (): Promise<void> {
    this.#messages = []
    this.turns = 0
  }

  async close (): Promise<void> {}
}

/** Opens one session on `target`. */
export async function openSession (target: TargetSpec): Promise<{ session: BenchSession, connectMs: number }> {
  if (target.kind === 'sdk') return { session: new SdkSession(target), connectMs: 0 }
  return await RealtimeSession.open(target.url)
}
