/**
 * The upstream simulator, exercised over real HTTP on loopback by the real openai SDK.
 */
import { request as httpRequest } from 'node:http'
import OpenAI, { APIConnectionError, APIError, RateLimitError } from 'openai'
import type { ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'

const model = 'gpt-4o'
const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: 'Tell me something' }]

let sim: Simulator
let client: OpenAI

beforeEach(async () => {
  sim = await startSimulator()
  client = new OpenAI({ apiKey: 'sk-test-fake', baseURL: sim.baseURL, maxRetries: 0 })
})

afterEach(async () => {
  await sim.close()
})

async function collect (stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return chunks
}

function contentOf (chunks: ChatCompletionChunk[]): string {
  return chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')
}

/** The error `promise` rejects with (fails the test if it resolves). */
async function rejection (promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the promise to reject')
}

/** Raw HTTP against the simulator: status, headers and each body read as it arrived. */
function rawRequest (method: string, path: string, body?: string): Promise<{ status: number, headers: Record<string, unknown>, reads: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${sim.baseURL.replace(/\/v1$/, '')}${path}`, { method, headers: { 'content-type': 'application/json' } }, (res) => {
      const reads: Buffer[] = []
      res.on('data', (read: Buffer) => reads.push(read))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, reads }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

describe('streaming', () => {
  it('streams text with realistic chunks, a usage chunk and [DONE]', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. Twice!'
    sim.enqueue({ text, usage: { prompt_tokens: 11, completion_tokens: 13 } })
    const stream = await client.chat.completions.create({ model, messages, stream: true, stream_options: { include_usage: true } })
    const chunks = await collect(stream)

    expect(contentOf(chunks)).toBe(text)
    expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(1)
    expect(chunks[0]?.id).toMatch(/^chatcmpl-sim-/)
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: '' })
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('stop')
    expect(chunks.at(-1)?.choices).toEqual([])
    expect(chunks.at(-1)?.usage).toEqual({ prompt_tokens: 11, completion_tokens: 13, total_tokens: 24 })

    const request = await sim.nextRequest()
    expect(request.body).toMatchObject({ model, messages, stream: true })
    expect(request.headers['authorization']).toBe('Bearer sk-test-fake')
    expect(await request.ended).toBe('finished')
    expect(request.outcome).toBe('finished')
  })

  it('omits usage without stream_options.include_usage', async () => {
    const chunks = await collect(await client.chat.completions.create({ model, messages, stream: true }))
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop')
    expect(chunks.every((chunk) => !('usage' in chunk))).toBe(true)
  })

  it('derives a distinct default reply per turn and echoes the model', async () => {
    const turn1: ChatCompletionMessageParam[] = [{ role: 'user', content: 'Hello' }]
    const turn2: ChatCompletionMessageParam[] = [...turn1, { role: 'assistant', content: 'Hi' }, { role: 'user', content: 'And again' }]
    const first = contentOf(await collect(await client.chat.completions.create({ model: 'gpt-4o-mini', messages: turn1, stream: true })))
    const secondChunks = await collect(await client.chat.completions.create({ model: 'gpt-4o-mini', messages: turn2, stream: true }))
    expect(first).toMatch(/^Simulated reply to "Hello" \(turn 1\)\. /)
    expect(contentOf(secondChunks)).toMatch(/^Simulated reply to "And again" \(turn 2\)\. /)
    expect(secondChunks[0]?.model).toBe('gpt-4o-mini')
  })

  it('reassembles two parallel tool calls with the SDK stream helper', async () => {
    const toolCalls = [
      { name: 'get_weather', arguments: '{"city":"Zürich","unit":"celsius"}' },
      { name: 'get_time', arguments: '{"timezone":"Europe/Zurich"}' }
    ]
    sim.enqueue({ toolCalls })
    const tools = toolCalls.map((call) => ({ type: 'function' as const, function: { name: call.name, parameters: { type: 'object' } } }))
    const completion = await client.chat.completions.stream({ model, messages, tools }).finalChatCompletion()

    const choice = completion.choices[0]
    expect(choice?.finish_reason).toBe('tool_calls')
    expect(choice?.message.content).toBeNull()
    expect(choice?.message.tool_calls?.map((call) => call.type === 'function' ? { name: call.function.name, arguments: call.function.arguments } : call)).toEqual(toolCalls)
    expect(choice?.message.tool_calls?.every((call) => call.id.startsWith('call_'))).toBe(true)
  })

  it("delivers a unicode-heavy text byte-exact with 'bytes' chunking", async () => {
    const text = 'Grüße 👋🏽! 漢字とカナ、한국어. Family 👨‍👩‍👧‍👦 🏳️‍🌈, café e\u0301, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 — "quotes"\nnew line.'
    sim.enqueue({ text, chunking: 'bytes' })
    const chunks = await collect(await client.chat.completions.create({ model, messages, stream: true }))
    expect(contentOf(chunks)).toBe(text)
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop')
  })

  it("writes the 'bytes' stream in many small writes that still form valid SSE", async () => {
    const text = 'naïve 😀 漢字'
    sim.enqueue({ text, chunking: 'bytes' })
    const { status, headers, reads } = await rawRequest('POST', '/v1/chat/completions', JSON.stringify({ model, messages, stream: true }))
    expect(status).toBe(200)
    expect(headers['content-type']).toMatch(/^text\/event-stream/)
    // Loopback may coalesce writes, so only "more than one read" is guaranteed.
    expect(reads.length).toBeGreaterThan(1)
    const events = Buffer.concat(reads).toString('utf8').split('\n\n')
    expect(events.at(-1)).toBe('')
    expect(events.at(-2)).toBe('data: [DONE]')
    const content = events.slice(0, -2).map((event) => {
      const chunk: ChatCompletionChunk = JSON.parse(event.replace(/^data: /, ''))
      return chunk.choices[0]?.delta.content ?? ''
    }).join('')
    expect(content).toBe(text)
  })
})

describe('failures', () => {
  it('surfaces a 429 with retry-after as RateLimitError when retries are off', async () => {
    sim.enqueue({ failure: { kind: 'status', status: 429, retryAfterSeconds: 7, message: 'Slow down' } })
    const error = await rejection(client.chat.completions.create({ model, messages, stream: true }))
    expect(error).toBeInstanceOf(RateLimitError)
    if (!(error instanceof RateLimitError)) return
    expect(error.status).toBe(429)
    expect(error.headers?.get('retry-after')).toBe('7')
    expect(error.code).toBe('rate_limit_exceeded')
    expect(error.message).toContain('Slow down')
    expect(sim.requests).toHaveLength(1)
  })

  it('lets the SDK retry a 429 into the next queued scenario', async () => {
    // retry-after 0 makes the SDK retry at once instead of backing off.
    sim.enqueue({ failure: { kind: 'status', status: 429, retryAfterSeconds: 0 } }, { text: 'Second time lucky.' })
    const retrying = new OpenAI({ apiKey: 'sk-test-fake', baseURL: sim.baseURL, maxRetries: 1 })
    const chunks = await collect(await retrying.chat.completions.create({ model, messages, stream: true }))
    expect(contentOf(chunks)).toBe('Second time lucky.')
    expect(sim.requests).toHaveLength(2)
    expect(sim.requests[1]?.headers['x-stainless-retry-count']).toBe('1')
  })

  it('surfaces a 500 as an APIError with status 500', async () => {
    sim.enqueue({ failure: { kind: 'status', status: 500 } })
    const error = await rejection(client.chat.completions.create({ model, messages }))
    expect(error).toBeInstanceOf(APIError)
    expect(error instanceof APIError ? error.status : undefined).toBe(500)
  })

  it("makes the SDK iterator throw on a 'cut' stream", async () => {
    sim.enqueue({ text: 'one two three four five six', failure: { kind: 'cut', afterChunks: 3 } })
    const stream = await client.chat.completions.create({ model, messages, stream: true })
    const received: ChatCompletionChunk[] = []
    const error = await rejection((async () => {
      for await (const chunk of stream) received.push(chunk)
    })())
    // What actually happens (openai 6.49 on Node 20's fetch): the iterator does NOT end quietly;
    // it throws undici's `TypeError: terminated` (cause: SocketError "other side closed",
    // code UND_ERR_SOCKET) after yielding the chunks sent before the cut. It is not an APIError.
    expect(error).toBeInstanceOf(TypeError)
    expect(error).not.toBeInstanceOf(APIError)
    expect(error instanceof Error ? error.message : '').toBe('terminated')
    expect(received).toHaveLength(3)
    expect(await sim.requests[0]?.ended).toBe('finished')
  })

  it("makes a non-streaming call fail with APIConnectionError on 'cut'", async () => {
    sim.enqueue({ failure: { kind: 'cut', afterChunks: 0 } })
    expect(await rejection(client.chat.completions.create({ model, messages }))).toBeInstanceOf(APIConnectionError)
  })

  it("makes the SDK iterator throw APIError on an 'error-event'", async () => {
    sim.enqueue({ text: 'one two three four', failure: { kind: 'error-event', afterChunks: 2, message: 'The model crashed' } })
    const stream = await client.chat.completions.create({ model, messages, stream: true })
    const received: ChatCompletionChunk[] = []
    const error = await rejection((async () => {
      for await (const chunk of stream) received.push(chunk)
    })())
    expect(error).toBeInstanceOf(APIError)
    if (!(error instanceof APIError)) return
    expect(error.message).toContain('The model crashed')
    expect(error.status).toBeUndefined()
    expect(error.type).toBe('server_error')
    expect(received).toHaveLength(2)
  })

  it("resolves ended with 'aborted' when the client aborts a 'stall'", async () => {
    sim.enqueue({ text: 'one two three four', failure: { kind: 'stall', afterChunks: 2 } })
    const controller = new AbortController()
    const stream = await client.chat.completions.create({ model, messages, stream: true }, { signal: controller.signal })
    const request = await sim.nextRequest()
    const received: ChatCompletionChunk[] = []
    for await (const chunk of stream) {
      received.push(chunk)
      if (received.length === 2) controller.abort()
    }
    // The SDK swallows its own abort: the loop simply ends.
    expect(received).toHaveLength(2)
    expect(await request.ended).toBe('aborted')
    expect(request.outcome).toBe('aborted')
  })
})

describe('other routes and lifecycle', () => {
  it('answers a non-streaming call with a chat.completion built from the scenario', async () => {
    sim.enqueue({ text: 'Plain answer 👍', usage: { prompt_tokens: 3, completion_tokens: 4 } })
    const completion = await client.chat.completions.create({ model, messages })
    expect(completion.object).toBe('chat.completion')
    expect(completion.id).toMatch(/^chatcmpl-sim-/)
    expect(completion.choices[0]?.message).toMatchObject({ role: 'assistant', content: 'Plain answer 👍' })
    expect(completion.choices[0]?.finish_reason).toBe('stop')
    expect(completion.usage).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 })
  })

  it('lists gpt-4o under /v1/models', async () => {
    const ids: string[] = []
    for await (const listed of client.models.list()) ids.push(listed.id)
    expect(ids).toContain('gpt-4o')
  })

  it('answers unknown routes with 404 and invalid JSON with 400, as OpenAI error JSON', async () => {
    const missing = await rawRequest('GET', '/v1/nope')
    expect(missing.status).toBe(404)
    expect(JSON.parse(Buffer.concat(missing.reads).toString('utf8'))).toMatchObject({ error: { type: 'invalid_request_error', code: 'unknown_url' } })
    const invalid = await rawRequest('POST', '/v1/chat/completions', '{"model":')
    expect(invalid.status).toBe(400)
    expect(JSON.parse(Buffer.concat(invalid.reads).toString('utf8'))).toMatchObject({ error: { type: 'invalid_request_error' } })
    expect(sim.requests).toHaveLength(0)
  })

  it('hands out requests in arrival order with nextRequest and emits request events', async () => {
    const seen: number[] = []
    sim.on('request', (request) => seen.push(request.id))
    const pending = sim.nextRequest()
    await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'one' }] })
    await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'two' }] })
    expect((await pending).body.messages).toEqual([{ role: 'user', content: 'one' }])
    expect((await sim.nextRequest()).body.messages).toEqual([{ role: 'user', content: 'two' }])
    expect(seen).toEqual([1, 2])
  })

  it('stops a paced stream and clears its timers on close()', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length
    const before = timers()
    sim.enqueue({ text: 'slow and steady', tokenDelayMs: 60_000 })
    const stream = await client.chat.completions.create({ model, messages, stream: true })
    const iterator = stream[Symbol.asyncIterator]()
    await iterator.next() // the role chunk; the next one waits on a 60 s timer
    const request = await sim.nextRequest()
    const reading = rejection(iterator.next())
    await sim.close()
    expect(await request.ended).toBe('aborted')
    expect(await reading).toBeInstanceOf(TypeError) // 'terminated': the connection was closed
    expect(timers()).toBeLessThanOrEqual(before)
    await expect(sim.nextRequest()).rejects.toThrow(/closed/)
  })
})
