/**
 * Issue 2: the transport — authentication at upgrade, subprotocols, health and readiness,
 * backpressure, session limits, shutdown, and what reaches the logs.
 */
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient } from '../helpers/ws-client.js'

let gw: TestGateway | undefined
const clients: TestClient[] = []
async function connect (url: string, options: Parameters<typeof TestClient.connect>[1] = {}): Promise<TestClient> {
  const client = await TestClient.connect(url, options)
  clients.push(client)
  return client
}

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
  gw = undefined
})

/** The HTTP status of a refused upgrade. */
async function refusedStatus (url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<number> {
  const ws = new WebSocket(url, options.protocols ?? [], options)
  const [request, response] = await once(ws, 'unexpected-response') as [{ destroy (): void }, { statusCode: number }]
  request.destroy()
  return response.statusCode
}

describe('authentication', () => {
  const env = { GATEWAY_API_KEYS: 'gw-test-key-a:tenant-a,gw-test-key-b:tenant-b' }

  it('accepts a Bearer key and the browser subprotocol form, answering with the realtime subprotocol', async () => {
    gw = await startGateway({ env })
    const byHeader = await connect(gw.url, { headers: { authorization: 'Bearer gw-test-key-a' } })
    expect(byHeader.events[0]?.type).toBe('session.created')
    const byProtocol = await connect(gw.url, { protocols: ['realtime', 'openai-insecure-api-key.gw-test-key-b'] })
    expect(byProtocol.ws.protocol).toBe('realtime')
  })

  it('refuses a missing or unknown key with 401 before upgrading', async () => {
    gw = await startGateway({ env })
    expect(await refusedStatus(gw.url)).toBe(401)
    expect(await refusedStatus(gw.url, { headers: { authorization: 'Bearer gw-test-wrong' } })).toBe(401)
    expect(await refusedStatus(gw.url, { protocols: ['realtime', 'openai-insecure-api-key.gw-test-wrong'] })).toBe(401)
  })

  it('never sends the client key upstream, and never logs it', async () => {
    gw = await startGateway({ env })
    const client = await connect(gw.url, { headers: { authorization: 'Bearer gw-test-key-a' } })
    gw.sim.enqueue({ text: 'secret-free reply' })
    await client.ask('a prompt that must not be logged at info')
    expect(gw.sim.requests[0]?.headers.authorization).toBe('Bearer sk-test-upstream-fake-0000')
    const text = gw.log.text()
    expect(text).not.toContain('gw-test-key-a')
    expect(text).not.toContain('sk-test-upstream-fake-0000')
    const infoAndAbove = gw.log.lines.filter((l) => Number(l['level']) >= 30).map((l) => JSON.stringify(l)).join('\n')
    expect(infoAndAbove).not.toContain('a prompt that must not be logged')
    expect(infoAndAbove).not.toContain('secret-free reply')
    const opened = gw.log.lines.find((l) => l['msg'] === 'session opened')
    expect(opened).toMatchObject({ sessionId: expect.stringMatching(/^sess_/), conversationId: expect.stringMatching(/^conv_/) })
  })

  it('does not select a subprotocol the client did not offer', async () => {
    gw = await startGateway()
    const client = await connect(gw.url)
    expect(client.ws.protocol).toBe('')
  })
})

describe('health and readiness', () => {
  it('serves /healthz and /readyz naming the upstream', async () => {
    gw = await startGateway()
    const health = await gw.app.inject({ method: 'GET', url: '/healthz' })
    expect(health.json()).toEqual({ status: 'ok' })
    const ready = await gw.app.inject({ method: 'GET', url: '/readyz' })
    expect(ready.statusCode).toBe(200)
    expect(ready.json()).toMatchObject({ status: 'ready', store: 'memory', upstream: { kind: 'openai-compatible', baseURL: gw.sim.baseURL } })
  })
})

describe('limits', () => {
  it('closes a client that does not read with 4008 once MAX_PENDING_BYTES is queued', async () => {
    // ON_DISCONNECT=cancel: the dropped client's reply stops, so the upstream shows the close.
    gw = await startGateway({ env: { MAX_PENDING_BYTES: '1024', ON_DISCONNECT: 'cancel' } })
    // ~15 MB of events, more than loopback's kernel buffers hold; then the upstream stalls, so
    // only the gateway's own limit can end this response.
    gw.sim.enqueue({ text: 'word '.repeat(70_000), failure: { kind: 'stall', afterChunks: 65_000 } })
    const client = await connect(gw.url)
    client.ws.pause() // stop reading from the socket: the kernel buffers fill, then ws queues
    client.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'flood me' }] } })
    client.send({ type: 'response.create' })
    const upstream = await gw.sim.nextRequest()
    try {
      expect(await upstream.ended).toBe('aborted')
    } finally {
      client.ws.resume()
    }
    const { code } = await client.closed
    expect(code).toBe(4008)
    expect(gw.log.lines.some((l) => l['msg'] === 'slow consumer')).toBe(true)
  })

  it('closes sessions beyond MAX_SESSIONS with 1013', async () => {
    gw = await startGateway({ env: { MAX_SESSIONS: '1' } })
    await connect(gw.url)
    const ws = new WebSocket(gw.url)
    const [code] = await once(ws, 'close') as [number]
    expect(code).toBe(1013)
  })
})

describe('shutdown', () => {
  it('closes every session with 1012 and reports draining', async () => {
    gw = await startGateway()
    const a = await connect(gw.url)
    const b = await connect(gw.url)
    const closing = gw.app.close()
    const [ca, cb] = await Promise.all([a.closed, b.closed])
    await closing
    expect([ca.code, cb.code]).toEqual([1012, 1012])
  })
})
