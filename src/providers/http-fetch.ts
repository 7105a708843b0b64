/**
 * The `fetch` the `openai` SDK sends upstream requests through: node:http(s) with keep-alive
 * agents instead of the global (undici) fetch. On this project's 2-core benchmark machine,
 * undici's fetch costs about twice the CPU per streamed chunk (its WHATWG body streams) and
 * holds the event loop for about a millisecond per request; this path does neither.
 *
 * The SDK still builds the request (URL, headers, auth, body), applies its timeout through the
 * signal, and reads errors from the Response it gets. The provider reads a streamed body with
 * `textReader(response)`, straight from the node stream; the Response's own body stream is
 * tapped only if someone reads it (the SDK, for an error body).
 *
 * Anything but a string or byte body (never the case for chat completions) goes to the global
 * fetch unchanged.
 */
import http from 'node:http'
import https from 'node:https'
import type { IncomingMessage } from 'node:http'

const bodies = new WeakMap<Response, IncomingMessage>()

/** Reads a response body as text, a network read (or what queued since the last call) at a time. */
export interface TextReader {
  /** The next text; undefined at the end. Rejects when the body failed or was aborted. */
  read (): Promise<string | undefined>
}

/** Chunks a node stream may queue before it is paused (backpressure). */
const MAX_QUEUED = 64

/**
 * A reader of `response`'s body: straight from the node stream when this fetch made the
 * response (no WHATWG streams), else through `response.body`.
 */
export function textReader (response: Response): TextReader | undefined {
  const message = bodies.get(response)
  if (message === undefined) return webTextReader(response)
  bodies.delete(response)
  message.setEncoding('utf8')
  const queue: string[] = []
  let ended = false
  // Destroyed before this reader was made (aborted, or the connection failed): its events are past.
  let failure = message.destroyed ? closedEarly(message) : undefined
  let wake: (() => void) | undefined
  const notify = (): void => {
    const resolve = wake
    wake = undefined
    resolve?.()
  }
  message.on('data', (text: string) => {
    if (queue.push(text) >= MAX_QUEUED) message.pause()
    notify()
  })
  message.once('end', () => { ended = true; notify() })
  message.once('error', (err) => { failure ??= err; notify() })
  message.once('close', () => {
    if (!ended) failure ??= closedEarly(message)
    notify()
  })
  return {
    async read () {
      // Every wake-up follows data, the end or a failure.
      if (queue.length === 0 && !ended && failure === undefined) await new Promise<void>((resolve) => { wake = resolve })
      if (queue.length > 0) {
        const text = queue.length === 1 ? queue[0] ?? '' : queue.join('')
        queue.length = 0
        if (message.isPaused()) message.resume()
        return text
      }
      if (failure !== undefined) throw failure
      return undefined
    }
  }
}

function closedEarly (message: IncomingMessage): Error {
  return message.errored ?? new Error('the upstream connection closed before the end of the body')
}

function webTextReader (response: Response): TextReader | undefined {
  const reader = response.body?.getReader()
  if (reader === undefined) return undefined
  const decoder = new TextDecoder()
  let done = false
  return {
    async read () {
      if (done) return undefined
      const read = await reader.read()
      if (!read.done) return decoder.decode(read.value, { stream: true })
      done = true
      return decoder.decode()
    }
  }
}

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

export function createHttpFetch (): Fetch {
  const agents = {
    'http:': new http.Agent({ keepAlive: true }),
    'https:': new https.Agent({ keepAlive: true })
  }
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : input)
    const body = init.body ?? undefined
    if (input instanceof Request || (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) || !(url.protocol in agents)) {
      return await fetch(input, init)
    }
    const signal = init.signal ?? undefined
    signal?.throwIfAborted()
    const headers: Record<string, string> = {}
    for (const [name, value] of new Headers(init.headers)) headers[name] = value
    if (body !== undefined) headers['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength)
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method: init.method ?? 'GET',
      headers,
      agent: agents[url.protocol as keyof typeof agents],
      ...(signal === undefined ? {} : { signal })
    })
    return await new Promise<Response>((resolve, reject) => {
      request.once('error', reject)
      request.once('response', (message) => {
        // Errors after this point end the body (the reader sees them), not the request.
        request.off('error', reject)
        request.on('error', () => {})
        resolve(toResponse(message))
      })
      request.end(body)
    })
  }
}

function toResponse (message: IncomingMessage): Response {
  const headers = new Headers()
  for (let i = 0; i + 1 < message.rawHeaders.length; i += 2) headers.append(message.rawHeaders[i] ?? '', message.rawHeaders[i + 1] ?? '')
  const status = message.statusCode ?? 502
  const noBody = status === 204 || status === 205 || status === 304
  // highWaterMark 0: the node stream is tapped only when the Response's body is first read.
  const body = noBody
    ? null
    : new ReadableStream<Uint8Array>({
      pull (controller) {
        if (bodies.get(response) !== message) return
        bodies.delete(response)
        if (message.destroyed) {
          controller.error(closedEarly(message))
          return
        }
        message.on('data', (chunk: Buffer) => controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)))
        message.once('end', () => controller.close())
        message.once('error', (err) => controller.error(err))
      },
      cancel () {
        message.destroy()
      }
    }, { highWaterMark: 0 })
  const response = new Response(body, { status, statusText: message.statusMessage ?? '', headers })
  if (noBody) message.resume()
  else bodies.set(response, message)
  return response
}
