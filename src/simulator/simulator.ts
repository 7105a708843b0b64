/**
 * An OpenAI-compatible Chat Completions upstream on loopback, built on node:http only. Tests,
 * the benchmark and the offline demo point the openai SDK (or the gateway) at `baseURL` and
 * script each reply with a queued {@link Scenario}.
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { ChatCompletionCreateParams } from 'openai/resources/chat/completions'
import { buildChunks, buildCompletion, estimatePromptTokens, resolveScenario, type CompletionMeta, type Scenario } from './scenario.js'

export interface SimulatorOptions {
  /** Interface to listen on; default '127.0.0.1'. */
  host?: string
  /** Port to listen on; default 0 (any free port). */
  port?: number
  /** Merged under every request's scenario (a queued scenario's fields win), e.g. pacing. */
  defaults?: Partial<Scenario>
  /** Refuse (400) every request carrying `stream_options`, like upstreams that predate it. */
  rejectStreamOptions?: boolean
}

export type RequestOutcome = 'finished' | 'aborted'

/** One chat request the simulator received. */
export interface SimulatedRequest {
  /** 1, 2, 3… in arrival order. */
  id: number
  body: ChatCompletionCreateParams
  headers: IncomingHttpHeaders
  /**
   * 'finished' once the simulator has played its scenario to the end (including a deliberate
   * 'cut'); 'aborted' if the connection closed first (client abort, or `close()`). Never rejects.
   */
  ended: Promise<RequestOutcome>
  /** Set when `ended` resolves. */
  outcome?: RequestOutcome
}

export interface SimulatorEvents {
  request: [request: SimulatedRequest]
}

export interface Simulator {
  /** E.g. `http://127.0.0.1:PORT/v1`, ready for `new OpenAI({ baseURL })`. */
  readonly baseURL: string
  readonly port: number
  /** Every chat request received so far, in arrival order. */
  readonly requests: SimulatedRequest[]
  /** Queue scenarios (FIFO); each valid chat request consumes one, else the defaults are played. */
  enqueue (...scenarios: Scenario[]): void
  /**
   * The next request not yet returned by `nextRequest()`, in arrival order: resolves at once if
   * one already arrived, else when one does. Rejects if the simulator closes first.
   */
  nextRequest (): Promise<SimulatedRequest>
  on (event: 'request', listener: (request: SimulatedRequest) => void): this
  once (event: 'request', listener: (request: SimulatedRequest) => void): this
  off (event: 'request', listener: (request: SimulatedRequest) => void): this
  /** Stops every stream, closes every connection and the server. Idempotent. */
  close (): Promise<void>
}

/** `{ error: { message, type, param, code } }`, as the OpenAI API sends it. */
function errorBody (message: string, type: string, code: string | null): string {
  return JSON.stringify({ error: { message, type, param: null, code } })
}

/** The OpenAI error `type` and `code` that go with an HTTP status. */
function errorKind (status: number): { type: string, code: string | null } {
  if (status === 429) return { type: 'requests', code: 'rate_limit_exceeded' }
  if (status === 401) return { type: 'invalid_request_error', code: 'invalid_api_key' }
  if (status >= 500) return { type: 'server_error', code: 'server_error' }
  return { type: 'invalid_request_error', code: null }
}

function sendJson (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': requestId(), ...headers })
  res.end(body)
}

function requestId (): string {
  return `req_sim${randomBytes(12).toString('hex')}`
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function'])

/** Checks what the simulator relies on: a string `model` and an array of messages with known roles. */
function isChatRequest (value: unknown): value is ChatCompletionCreateParams {
  if (!isRecord(value) || typeof value['model'] !== 'string') return false
  const messages = value['messages']
  return Array.isArray(messages) &&
    messages.every((message) => isRecord(message) && typeof message['role'] === 'string' && ROLES.has(message['role']))
}

async function readBody (req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = []
  for await (const part of req) {
    if (Buffer.isBuffer(part)) parts.push(part)
  }
  return Buffer.concat(parts).toString('utf8')
}

/** Waits `ms`; resolves false (and clears the timer) as soon as `signal` aborts. */
function delay (ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false)
  if (ms <= 0) return Promise.resolve(true)
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(true)
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** Resolves once `signal` aborts. */
function aborted (signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
}

/** Writes `data` and waits until it is flushed to the socket; false if the stream stopped first. */
function write (res: ServerResponse, data: Buffer | string, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted || res.destroyed) return Promise.resolve(false)
  return new Promise((resolve) => {
    const onAbort = (): void => resolve(false)
    signal.addEventListener('abort', onAbort, { once: true })
    res.write(data, (error) => {
      signal.removeEventListener('abort', onAbort)
      resolve(error == null && !signal.aborted)
    })
  })
}

/** Byte-slice sizes for 'bytes' chunking, used in rotation across the whole response. */
const BYTE_SLICES = [1, 3, 2, 1, 2, 3, 3, 1]

/** Writes SSE events one write per event, or in 1–3 byte slices for 'bytes' chunking. */
class SseWriter {
  #slice = 0

  constructor (
    private readonly res: ServerResponse,
    private readonly chunking: 'event' | 'bytes',
    private readonly signal: AbortSignal
  ) {}

  /** Sends `data: <payload>\n\n`; false once the stream has stopped. */
  async event (payload: string): Promise<boolean> {
    return this.#send(Buffer.from(`data: ${payload}\n\n`, 'utf8'))
  }

  /** Sends an SSE comment line (clients must ignore it). */
  async comment (text: string): Promise<boolean> {
    return this.#send(Buffer.from(`: ${text}\n\n`, 'utf8'))
  }

  async #send (bytes: Buffer): Promise<boolean> {
    if (this.chunking === 'event') return write(this.res, bytes, this.signal)
    for (let start = 0; start < bytes.length;) {
      const size = BYTE_SLICES[this.#slice++ % BYTE_SLICES.length] ?? 1
      if (!await write(this.res, bytes.subarray(start, start + size), this.signal)) return false
      start += size
    }
    return true
  }
}

class SimulatorServer extends EventEmitter<SimulatorEvents> implements Simulator {
  readonly requests: SimulatedRequest[] = []
  baseURL = ''
  port = 0
  readonly #server = createServer((req, res) => {
    this.#handle(req, res).catch(() => res.destroy())
  })

  readonly #defaults: Partial<Scenario>
  readonly #queue: Scenario[] = []
  /** Stops the playback of each in-flight response. */
  readonly #active = new Set<AbortController>()
  readonly #waiters: Array<{ resolve: (request: SimulatedRequest) => void, reject: (error: Error) => void }> = []
  #taken = 0
  #closing: Promise<void> | undefined

  readonly #rejectStreamOptions: boolean

  constructor (defaults: Partial<Scenario>, rejectStreamOptions = false) {
    super()
    this.#defaults = defaults
    this.#rejectStreamOptions = rejectStreamOptions
  }

  async listen (host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        resolve()
      })
    })
    const address: AddressInfo | string | null = this.#server.address()
    this.port = typeof address === 'object' && address !== null ? address.port : port
    this.baseURL = `http://${host.includes(':') ? `[${host}]` : host}:${this.port}/v1`
  }

  enqueue (...scenarios: Scenario[]): void {
    this.#queue.push(...scenarios)
  }

  nextRequest (): Promise<SimulatedRequest> {
    const ready = this.requests[this.#taken]
    if (ready !== undefined) {
      this.#taken++
      return Promise.resolve(ready)
    }
    if (this.#closing !== undefined) return Promise.reject(new Error('The simulator is closed'))
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  close (): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      for (const halt of this.#active) halt.abort()
      for (const waiter of this.#waiters.splice(0)) waiter.reject(new Error('The simulator closed before another request arrived'))
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
    return this.#closing
  }

  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const halt = new AbortController()
    this.#active.add(halt)
    res.once('close', () => {
      halt.abort()
      this.#active.delete(halt)
    })
    try {
      const path = new URL(req.url ?? '/', 'http://simulator').pathname
      if (req.method === 'POST' && path === '/v1/chat/completions') {
        await this.#chat(req, res, halt.signal)
      } else if (req.method === 'GET' && path === '/v1/models') {
        sendJson(res, 200, JSON.stringify({
          object: 'list',
          data: [
            { id: 'gpt-4o', object: 'model', created: 1715367049, owned_by: 'system' },
            { id: 'gpt-4o-mini', object: 'model', created: 1721172741, owned_by: 'system' }
          ]
        }))
      } else {
        sendJson(res, 404, errorBody(`Unknown request URL: ${req.method ?? ''} ${path}.`, 'invalid_request_error', 'unknown_url'))
      }
    } catch {
      // A client that vanished mid-body, or a throwing 'request' listener.
      if (!res.headersSent) sendJson(res, 500, errorBody('The simulator failed to handle the request.', 'server_error', 'server_error'))
      else res.destroy()
    }
  }

  async #chat (req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    let body: unknown
    try {
      body = JSON.parse(await readBody(req))
    } catch (error) {
      if (signal.aborted) return
      const detail = error instanceof Error ? error.message : String(error)
      sendJson(res, 400, errorBody(`We could not parse the JSON body of your request: ${detail}`, 'invalid_request_error', 'invalid_json'))
      return
    }
    if (!isChatRequest(body)) {
      sendJson(res, 400, errorBody('The request needs a string `model` and an array of `messages` with valid roles.', 'invalid_request_error', 'invalid_value'))
      return
    }

    let deliberateClose = false
    let outcome: RequestOutcome | undefined
    const request: SimulatedRequest = {
      id: this.requests.length + 1,
      body,
      headers: req.headers,
      ended: new Promise((resolve) => {
        const settle = (value: RequestOutcome): void => {
          if (outcome !== undefined) return
          outcome = value
          request.outcome = value
          resolve(value)
        }
        res.once('finish', () => settle('finished'))
        res.once('close', () => settle(res.writableFinished || deliberateClose ? 'finished' : 'aborted'))
      })
    }
    this.requests.push(request)
    const waiter = this.#waiters.shift()
    if (waiter !== undefined) {
      this.#taken++
      waiter.resolve(request)
    }
    this.emit('request', request)

    if (this.#rejectStreamOptions && body.stream_options !== undefined) {
      // Like upstreams that predate stream_options: refused before any scenario is consumed.
      sendJson(res, 400, errorBody('Unrecognized request argument supplied: stream_options', 'invalid_request_error', null))
      return
    }
    const scenario = resolveScenario(this.#defaults, this.#queue.shift(), body.messages)
    const failure = scenario.failure
    if (failure?.kind === 'status') {
      const { type, code } = errorKind(failure.status)
      const headers: Record<string, string> = failure.retryAfterSeconds === undefined ? {} : { 'retry-after': String(failure.retryAfterSeconds) }
      sendJson(res, failure.status, errorBody(failure.message ?? `Simulated upstream error (HTTP ${failure.status}).`, type, code), headers)
      return
    }

    const meta: CompletionMeta = {
      id: `chatcmpl-sim-${randomBytes(12).toString('hex')}`,
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      includeUsage: body.stream_options?.include_usage === true,
      promptTokens: estimatePromptTokens(body.messages)
    }
    const cut = (): void => {
      deliberateClose = true
      res.destroy()
    }

    if (body.stream !== true) {
      // Non-streaming: wait as long as the stream would have taken, then answer in one piece.
      // 'cut' drops the connection without a response, 'stall' never answers, 'error-event' is a 500.
      const pieces = buildChunks(scenario, meta).length
      const wait = (scenario.firstTokenDelayMs ?? 0) + (scenario.tokenDelayMs ?? 0) * Math.max(0, pieces - 1)
      if (!await delay(wait, signal)) return
      if (failure?.kind === 'cut') cut()
      else if (failure?.kind === 'stall') await aborted(signal)
      else if (failure?.kind === 'error-event') sendJson(res, 500, errorBody(failure.message ?? 'Simulated upstream failure.', 'server_error', 'server_error'))
      else sendJson(res, 200, JSON.stringify(buildCompletion(scenario, meta)))
      return
    }

    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': requestId()
    })
    res.flushHeaders()
    const sse = new SseWriter(res, scenario.chunking ?? 'event', signal)
    const chunks = buildChunks(scenario, meta)
    const sent = Math.min(chunks.length, failure === undefined ? chunks.length : failure.afterChunks)
    for (let i = 0; i < sent; i++) {
      const pause = i === 0 ? scenario.firstTokenDelayMs : scenario.tokenDelayMs
      if (!await delay(pause ?? 0, signal)) return
      if (scenario.keepAlive === true && !await sse.comment('keep-alive')) return
      if (!await sse.event(JSON.stringify(chunks[i]))) return
    }
    if (failure?.kind === 'cut') {
      cut()
    } else if (failure?.kind === 'stall') {
      await aborted(signal)
    } else if (failure?.kind === 'error-event') {
      if (await sse.event(errorBody(failure.message ?? 'Simulated upstream failure.', 'server_error', 'server_error'))) res.end()
    } else if (await sse.event('[DONE]')) {
      res.end()
    }
  }
}

/**
 * Starts a simulator listening on `options.host` (default 127.0.0.1) and `options.port`
 * (default 0, any free port). Routes: `POST /v1/chat/completions` (SSE when `stream: true`,
 * else a `chat.completion` object), `GET /v1/models`; anything else is a 404 error JSON.
 */
export async function startSimulator (options: SimulatorOptions = {}): Promise<Simulator> {
  const simulator = new SimulatorServer(options.defaults ?? {}, options.rejectStreamOptions)
  await simulator.listen(options.host ?? '127.0.0.1', options.port ?? 0)
  return simulator
}
