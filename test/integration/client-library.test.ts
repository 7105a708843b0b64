/**
 * The client library (src/client) in Node against a real gateway: replies as async iterables,
 * reconnect and resume after a killed socket (no gap, no duplicate), attach from a second
 * client, cancel, client-side tools, images, and every way a connection ends.
 */
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { buildApp } from '../../src/app.js'
import { TokenwireClient, type ConnectionStatus, type TokenwireClientOptions } from '../../src/client/index.js'
import type { ServerEvent } from '../../src/protocol/events.js'
import { loadConfig } from '../../src/config.js'
import { createMemoryBackend } from '../../src/store/memory-store.js'
import { startSimulator } from '../../src/simulator/simulator.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { createLogSink } from '../helpers/log-sink.js'

const cleanups: Array<() => Promise<unknown> | unknown> = []
afterEach(async () => {
  await Promise.allSettled(cleanups.splice(0).reverse().map(async (cleanup) => cleanup()))
})

async function gateway (env: Record<string, string> = {}): Promise<TestGateway> {
  const gw = await startGateway({ env })
  cleanups.push(async () => gw.close())
  return gw
}

/** A client with fast reconnects, closed after the test; records statuses and events. */
function client (url: string, options: Partial<TokenwireClientOptions> = {}) {
  const c = new TokenwireClient({ url, WebSocket, reconnect: { baseDelayMs: 20, maxDelayMs: 200, tryLaterDelayMs: 100 }, ...options })
  const statuses: ConnectionStatus[] = []
  const events: ServerEvent[] = []
  c.on('status', (status) => statuses.push(status))
  c.on('event', (event) => events.push(event))
  cleanups.push(() => c.close())
  return { c, statuses, events }
}

/** Resolves with the first status matching `predicate` (now or later). */
function statusWhere (c: TokenwireClient, predicate: (status: ConnectionStatus) => boolean): Promise<ConnectionStatus> {
  if (predicate(c.status)) return Promise.resolve(c.status)
  return new Promise((resolve) => {
    const off = c.on('status', (status) => {
      if (!predicate(status)) return
      off()
      resolve(status)
    })
  })
}

/** Resolves with the next server event of `type`. */
function nextEvent (c: TokenwireClient, type: ServerEvent['type']): Promise<ServerEvent> {
  return new Promise((resolve) => {
    const off = c.on('event', (event) => {
      if (event.type !== type) return
      off()
      resolve(event)
    })
  })
}

const deltas = (events: ServerEvent[]) => events.flatMap((e) => e.type === 'response.output_text.delta' ? [e.delta] : [])
const LONG = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty'

describe('the client library', () => {
  it('streams a reply as an async iterable of text deltas and keeps the cursor', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: 'Hello there, friend.', tokenDelayMs: 2 })
    const { c, statuses } = client(gw.url)
    await c.connect()
    expect(c.conversationId).toMatch(/^conv_/)
    const reply = c.send('Hi!')
    expect(reply.mine).toBe(true)
    expect(reply.status).toBe('pending')
    const parts: string[] = []
    for await (const delta of reply) parts.push(delta)
    expect(parts.join('')).toBe('Hello there, friend.')
    expect(parts.length).toBeGreaterThan(1)
    const result = await reply.done
    expect(result).toMatchObject({ status: 'completed', text: 'Hello there, friend.' })
    expect(result.responses).toHaveLength(1)
    expect(reply.responseId).toBe(result.responses[0]?.id)
    expect(c.lastEventId).toMatch(/^ev_[a-z0-9]+_\d+$/)
    expect(statuses.map((s) => s.state)).toEqual(['connecting', 'open'])
    // A second iteration starts from the beginning.
    const again: string[] = []
    for await (const delta of reply) again.push(delta)
    expect(again.join('')).toBe('Hello there, friend.')
    expect(gw.sim.requests[0]?.body.messages).toEqual([{ role: 'user', content: 'Hi!' }])
  })

  it('resumes after a killed socket with resume_after: the reply completes with no gap and no duplicate', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: LONG, tokenDelayMs: 15 })
    const { c, events, statuses } = client(gw.url)
    await c.connect()
    const reply = c.send('Count to twenty.')
    const iterator = reply[Symbol.asyncIterator]()
    await iterator.next() // the reply is streaming
    const cursor = c.lastEventId
    for (const socket of gw.app.websocketServer.clients) socket.terminate()
    await statusWhere(c, (s) => s.state === 'reconnecting')
    await statusWhere(c, (s) => s.state === 'open')
    const result = await reply.done
    expect(result).toMatchObject({ status: 'completed', text: LONG })
    expect(deltas(events).join('')).toBe(LONG)
    const ids = events.map((e) => e.event_id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(gw.sim.requests).toHaveLength(1) // one generation, resumed, not restarted
    expect(statuses.map((s) => s.state)).toEqual(['connecting', 'open', 'reconnecting', 'connecting', 'open'])
    expect(statuses[2]).toMatchObject({ code: 1006, attempt: 1 })
    const attach = gw.log.lines.find((line) => line['msg'] === 'session attached')
    expect(attach).toMatchObject({ resume: true })
    expect(cursor).toBeDefined()
  })

  it('resumes from a cursor kept elsewhere (resumeAfter): exactly the events after it, no item replay', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: 'Once only.', tokenDelayMs: 1 })
    const first = client(gw.url)
    await first.c.connect()
    await first.c.send('Say it once.').done
    const cursors = first.events.filter((e) => e.event_id.startsWith('ev_'))
    const after = cursors[1] // the user item's conversation.item.done
    const second = client(gw.url, { conversationId: first.c.conversationId ?? '', resumeAfter: after?.event_id ?? '' })
    const done = nextEvent(second.c, 'response.done')
    await second.c.connect()
    await done
    expect(second.events.filter((e) => e.event_id.startsWith('ev_')).map((e) => e.event_id)).toEqual(cursors.slice(2).map((e) => e.event_id))
    expect(deltas(second.events).join('')).toBe('Once only.')
    expect(second.c.lastEventId).toBe(first.c.lastEventId)
  })

  it('attaches a second client: history as items, then the live reply as someone else\'s', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: 'First answer.', tokenDelayMs: 1 }, { text: LONG, tokenDelayMs: 10 })
    const a = client(gw.url)
    await a.c.connect()
    await a.c.send('First question.').done
    const b = client(gw.url, { conversationId: a.c.conversationId ?? '' })
    const items: unknown[] = []
    b.c.on('item', (item) => items.push(item))
    const replies = new Promise<import('../../src/client/index.js').Reply>((resolve) => b.c.on('reply', resolve))
    await b.c.connect()
    expect(b.c.conversationId).toBe(a.c.conversationId)
    expect(items).toMatchObject([
      { type: 'message', role: 'user', content: [{ text: 'First question.' }] },
      { type: 'message', role: 'assistant', content: [{ text: 'First answer.' }] }
    ])
    const mine = a.c.send('Second question.')
    const theirs = await replies
    expect(theirs.mine).toBe(false)
    expect((await theirs.done).text).toBe(LONG)
    expect((await mine.done).text).toBe(LONG)
    expect(items).toHaveLength(4) // the second question and answer, once each
  })

  it('cancels a reply mid-stream: it ends cancelled and the upstream request is aborted', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: `${LONG} ${LONG}`, tokenDelayMs: 20 })
    const { c } = client(gw.url)
    await c.connect()
    const reply = c.send('Talk for a while.')
    for await (const delta of reply) {
      expect(delta).not.toBe('')
      reply.cancel()
      reply.cancel() // once is enough
    }
    const result = await reply.done
    expect(result.status).toBe('cancelled')
    expect(LONG.startsWith(result.text)).toBe(true)
    expect(await (await gw.sim.nextRequest()).ended).toBe('aborted')
  })

  it('cancels another client\'s reply and a pending turn with client.cancel()', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: LONG, tokenDelayMs: 20 }, { text: 'After.', tokenDelayMs: 1 })
    const a = client(gw.url)
    await a.c.connect()
    const b = client(gw.url, { conversationId: a.c.conversationId ?? '' })
    await b.c.connect()
    const reply = a.c.send('Go on.')
    await nextEvent(b.c, 'response.output_text.delta')
    b.c.cancel()
    expect((await reply.done).status).toBe('cancelled')
    // A turn cancelled before its message is acknowledged never asks for a response.
    const pending = a.c.send('Never mind.')
    a.c.cancel()
    expect((await pending.done).status).toBe('cancelled')
    expect((await a.c.send('And now?').done).text).toBe('After.')
    expect(gw.sim.requests).toHaveLength(2)
  })

  it('answers its own tool calls and goes on; a failing tool becomes an error output', async () => {
    const gw = await gateway()
    gw.sim.enqueue(
      { toolCalls: [{ name: 'lookup', arguments: '{"q":"tokenwire"}' }, { name: 'broken', arguments: '{}' }, { name: 'lookup', arguments: '{not json' }] },
      { text: 'Found it.' }
    )
    const { c } = client(gw.url)
    const calls: unknown[] = []
    c.tools.register('lookup', { description: 'Looks things up', parameters: { type: 'object', properties: { q: { type: 'string' } } } }, (args, call) => {
      calls.push({ args, name: call.name })
      return { hits: 3 }
    })
    c.tools.register('broken', {}, () => { throw new Error('disk on fire') })
    await c.connect()
    const result = await c.send('Look it up.').done
    expect(result).toMatchObject({ status: 'completed', text: 'Found it.' })
    expect(result.responses).toHaveLength(2)
    expect(calls).toEqual([{ args: { q: 'tokenwire' }, name: 'lookup' }])
    const tools = gw.sim.requests[0]?.body.tools?.map((tool) => tool.type === 'function' ? tool.function.name : '')
    expect(tools).toEqual(expect.arrayContaining(['lookup', 'broken']))
    const outputs = gw.sim.requests[1]?.body.messages.filter((m) => m.role === 'tool').map((m) => JSON.parse(String(m.content)))
    expect(outputs).toEqual([
      { hits: 3 },
      { error: { code: 'tool_failed', message: 'disk on fire' } },
      { error: { code: 'invalid_arguments', message: 'the arguments are not valid JSON' } }
    ])
    expect(c.tools.unregister('broken')).toBe(true)
    expect(c.tools.unregister('broken')).toBe(false)
    expect(() => c.tools.register('bad name!', {}, () => '')).toThrow(/must be 1-64/)
  })

  it('follows a server-side tool call within one reply', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ toolCalls: [{ name: 'calculate', arguments: '{"expression":"6*7"}' }] }, { text: 'It is 42.' })
    const { c } = client(gw.url)
    await c.connect()
    const result = await c.send('What is 6*7?').done
    expect(result).toMatchObject({ status: 'completed', text: 'It is 42.' })
    expect(result.responses.map((r) => r.output?.[0]?.type)).toEqual(['function_call', 'message'])
  })

  it('sends images and session settings, and applies them again after a reconnect', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: 'A red dot.' }, { text: 'Still here.' })
    const { c } = client(gw.url, { session: { instructions: 'Be brief.' } })
    await c.connect()
    const image = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=='
    await c.send([{ type: 'input_text', text: 'What is this?' }, { type: 'input_image', image_url: image }]).done
    expect(gw.sim.requests[0]?.body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: image } }] }
    ])
    for (const socket of gw.app.websocketServer.clients) socket.terminate()
    await statusWhere(c, (s) => s.state === 'reconnecting')
    c.updateSession({ temperature: 0.5 })
    expect((await c.send('Are you there?').done).text).toBe('Still here.')
    expect(gw.sim.requests[1]?.body.temperature).toBe(0.5)
    expect(gw.sim.requests[1]?.body.messages[0]).toEqual({ role: 'system', content: 'Be brief.' })
  })

  it('queues what is sent before the connection is up', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: 'Queued fine.' })
    const { c } = client(gw.url)
    const reply = c.send('Early bird.')
    expect(c.sendEvent({ type: 'conversation.item.retrieve', item_id: 'item_missing' })).toBe(true)
    const errors: string[] = []
    c.on('error', (e) => errors.push(e.code))
    await c.connect()
    expect((await reply.done).text).toBe('Queued fine.')
    expect(errors).toEqual(['item_not_found'])
  })

  it('fails a reply whose message the gateway refuses, and says why', async () => {
    const gw = await gateway({ MAX_ITEM_BYTES: '256' })
    const { c } = client(gw.url)
    const errors: unknown[] = []
    c.on('error', (e) => errors.push(e))
    await c.connect()
    const reply = c.send('x'.repeat(400))
    await expect(async () => { for await (const delta of reply) expect(delta).toBe('') }).rejects.toThrow(/MAX_ITEM_BYTES/)
    expect(await reply.done).toMatchObject({ status: 'failed', error: { code: 'item_too_large' } })
    expect(errors).toMatchObject([{ code: 'item_too_large', fatal: false, param: 'item' }])
    expect(gw.sim.requests).toHaveLength(0)
  })

  it('reports a reply that failed upstream with its code', async () => {
    const gw = await gateway({ UPSTREAM_MAX_RETRIES: '0' })
    gw.sim.enqueue({ failure: { kind: 'status', status: 500 } })
    const { c } = client(gw.url)
    await c.connect()
    expect(await c.send('Hello?').done).toMatchObject({ status: 'failed', error: { code: 'upstream_unavailable' } })
  })
})

describe('how a connection ends', () => {
  it('stops for good on an unknown conversation (4504), with the error', async () => {
    const gw = await gateway()
    const { c, statuses } = client(gw.url, { conversationId: 'conv_doesnotexist' })
    const errors: unknown[] = []
    c.on('error', (e) => errors.push(e))
    await expect(c.connect()).rejects.toThrow(/conversation not found/)
    expect(errors).toMatchObject([
      { code: 'conversation_not_found', fatal: false },
      { code: 'connection_closed', fatal: true, closeCode: 4504 }
    ])
    expect(statuses.map((s) => s.state)).toEqual(['connecting', 'closed'])
    await expect(c.connect()).rejects.toThrow(/conversation not found/)
    expect(c.send('hello?').status).toBe('failed')
  })

  it('stops when the key is refused, and connects with the key as a subprotocol', async () => {
    const gw = await gateway({ GATEWAY_API_KEYS: 'sk-test-not-real:acme' })
    const refused = client(gw.url)
    const errors: string[] = []
    refused.c.on('error', (e) => errors.push(e.code))
    await expect(refused.c.connect()).rejects.toThrow(/refused the API key/)
    expect(errors).toEqual(['invalid_api_key'])
    const allowed = client(gw.url, { apiKey: 'sk-test-not-real' })
    await allowed.c.connect()
    expect(allowed.c.status.state).toBe('open')
    // reconnect() after a final close starts over.
    refused.c.reconnect()
    await statusWhere(refused.c, (s) => s.state === 'closed')
  })

  it('gives up after maxAttempts when nothing listens', async () => {
    const gw = await gateway()
    const url = gw.url
    await gw.close()
    const { c, statuses } = client(url, { reconnect: { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 2 } })
    await expect(c.connect()).rejects.toThrow(/gave up after 2 attempts/)
    expect(statuses.filter((s) => s.state === 'connecting')).toHaveLength(3)
    expect(c.status.failure).toMatchObject({ code: 'retries_exhausted' })
  })

  it('waits longer after 1013 (the instance is full), then gets in', async () => {
    const gw = await gateway({ MAX_SESSIONS: '1' })
    const first = client(gw.url)
    await first.c.connect()
    const second = client(gw.url, { reconnect: { baseDelayMs: 1, maxDelayMs: 5, tryLaterDelayMs: 60 } })
    const opened = second.c.connect()
    const waiting = await statusWhere(second.c, (s) => s.state === 'reconnecting')
    expect(waiting).toMatchObject({ code: 1013 })
    expect(waiting.retryInMs).toBeGreaterThanOrEqual(60)
    first.c.close()
    await opened
    expect(second.c.status.state).toBe('open')
  })

  it('follows a restart (1012) to the next instance on the same address and resumes the reply there', async () => {
    const sim = await startSimulator()
    cleanups.push(async () => sim.close())
    const backend = createMemoryBackend({ maxConversations: 100, ttlMs: 60_000, maxLogEvents: 1000, maxItems: 100 })
    cleanups.push(async () => backend.close())
    const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', OPENAI_BASE_URL: sim.baseURL, OPENAI_API_KEY: 'sk-test-not-real', HEARTBEAT_INTERVAL_MS: '0' })
    const start = async (port: number) => {
      const app = await buildApp({ config, backend, logger: createLogSink().logger })
      await app.listen({ host: '127.0.0.1', port })
      cleanups.push(async () => app.close())
      return app
    }
    const first = await start(0)
    const port = (first.server.address() as AddressInfo).port
    sim.enqueue({ text: LONG, tokenDelayMs: 15 })
    const { c, statuses, events } = client(`ws://127.0.0.1:${port}/v1/realtime`)
    await c.connect()
    const reply = c.send('Count.')
    await nextEvent(c, 'response.output_text.delta')
    await first.close() // 1012 to every session; the reply finishes into the shared log
    await start(port)
    expect((await reply.done).text).toBe(LONG)
    expect(statuses.find((s) => s.state === 'reconnecting')).toMatchObject({ code: 1012 })
    expect(deltas(events).join('')).toBe(LONG)
  })
})
