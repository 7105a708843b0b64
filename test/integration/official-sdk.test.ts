/**
 * The official `openai` SDK realtime client (`OpenAIRealtimeWS`, openai 6.x) against the real
 * gateway. The SDK always builds a `wss://` URL from its baseURL, so the gateway terminates TLS
 * with a fresh self-signed certificate that the client is told to trust (`options.ca`).
 */
import type { IncomingMessage } from 'node:http'
import OpenAI from 'openai'
import { OpenAIRealtimeWS } from 'openai/realtime/ws'
import type { OpenAIRealtimeError } from 'openai/realtime/internal-base'
import type { RealtimeServerEvent } from 'openai/resources/realtime/realtime'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { createTestCertificate, type TestCertificate } from '../helpers/tls.js'

const CLIENT_KEY = 'sk-test-client-fake'
const UPSTREAM_KEY = 'sk-test-upstream-fake-0000'

type EventOf<T extends RealtimeServerEvent['type']> = Extract<RealtimeServerEvent, { type: T }>

/** One SDK connection and everything it saw. */
interface Connection {
  readonly rt: OpenAIRealtimeWS
  /** Every server event, from `rt.on('event')`, in order. */
  readonly events: RealtimeServerEvent[]
  /** Every error the SDK emitted (server `error` events and socket errors). */
  readonly errors: OpenAIRealtimeError[]
  /** Resolves with the close code once the socket has closed. */
  readonly closed: Promise<number>
}

let gateways: TestGateway[] = []
let certificates: TestCertificate[] = []
let connections: Connection[] = []

afterEach(async () => {
  await Promise.allSettled(connections.map(closeConnection))
  await Promise.allSettled(gateways.map((gw) => gw.close()))
  await Promise.allSettled(certificates.map((cert) => cert.cleanup()))
  gateways = []
  certificates = []
  connections = []
})

/** A gateway on TLS (plus `env`), and the certificate its clients must trust. */
async function startTlsGateway (env: Record<string, string> = {}): Promise<{ gw: TestGateway, cert: TestCertificate }> {
  const cert = await createTestCertificate()
  certificates.push(cert)
  const gw = await startGateway({ env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, ...env } })
  gateways.push(gw)
  return { gw, cert }
}

/** `https://127.0.0.1:PORT/v1`, the baseURL a user gives the SDK. */
function baseURLOf (gw: TestGateway): string {
  return `https://127.0.0.1:${new URL(gw.origin).port}/v1`
}

/** Opens an SDK realtime connection, as documented: a client with baseURL, then OpenAIRealtimeWS. */
function connect (gw: TestGateway, cert: TestCertificate, apiKey = CLIENT_KEY): Connection {
  const client = new OpenAI({ apiKey, baseURL: baseURLOf(gw) })
  const rt = new OpenAIRealtimeWS({ model: 'gpt-4o', options: { ca: cert.ca } }, client)
  const events: RealtimeServerEvent[] = []
  const errors: OpenAIRealtimeError[] = []
  // Always registered: without an 'error' listener the SDK turns errors into unhandled rejections.
  rt.on('error', (err) => { errors.push(err) })
  rt.on('event', (event) => { events.push(event) })
  const closed = new Promise<number>((resolve) => rt.socket.once('close', (code: number) => resolve(code)))
  const connection = { rt, events, errors, closed }
  connections.push(connection)
  return connection
}

async function closeConnection ({ rt, closed }: Connection): Promise<void> {
  if (rt.socket.readyState !== WebSocket.CLOSED) rt.close()
  await closed
}

/**
 * The next server event of `type` (register before sending what triggers it). Rejects on an
 * SDK error (e.g. a server `error` event) or if the socket closes first.
 */
function nextEvent<T extends RealtimeServerEvent['type']> ({ rt }: Connection, type: T): Promise<EventOf<T>> {
  return new Promise((resolve, reject) => {
    const onEvent = (event: RealtimeServerEvent): void => {
      if (event.type !== type) return
      cleanup()
      resolve(event as EventOf<T>)
    }
    const onError = (err: OpenAIRealtimeError): void => {
      cleanup()
      reject(err)
    }
    const onClose = (code: number): void => {
      cleanup()
      reject(new Error(`socket closed (${code}) while waiting for ${type}`))
    }
    const cleanup = (): void => {
      rt.off('event', onEvent)
      rt.off('error', onError)
      rt.socket.off('close', onClose)
    }
    rt.on('event', onEvent)
    rt.on('error', onError)
    rt.socket.on('close', onClose)
  })
}

/** The next SDK error (socket or server `error` event). */
function nextError ({ rt }: Connection): Promise<OpenAIRealtimeError> {
  return new Promise((resolve) => rt.once('error', resolve))
}

/** Configures a text session, sends one user message and asks for a response; resolves response.done. */
async function textTurn (connection: Connection, userText: string): Promise<EventOf<'response.done'>> {
  const { rt } = connection
  const updated = nextEvent(connection, 'session.updated')
  rt.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], instructions: 'Answer briefly.' } })
  await updated
  const done = nextEvent(connection, 'response.done')
  rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: userText }] } })
  rt.send({ type: 'response.create' })
  return done
}

describe('OpenAIRealtimeWS (openai SDK) over TLS', () => {
  it('builds a wss:// URL from the https baseURL and holds a text dialog', async () => {
    const { gw, cert } = await startTlsGateway()
    const reply = 'Hello from Tokenwire over TLS — ünïcödé and emoji 🚀 survive the relay.'
    gw.sim.enqueue({ text: reply })

    const connection = connect(gw, cert)
    const { rt } = connection
    expect(rt.url.href).toBe(`wss://127.0.0.1:${new URL(gw.origin).port}/v1/realtime?model=gpt-4o`)

    const deltas: string[] = []
    rt.on('response.output_text.delta', (event) => { deltas.push(event.delta) })

    const created = await nextEvent(connection, 'session.created')
    expect(created.session.type).toBe('realtime')
    expect(connection.events[0]?.type).toBe('session.created')

    const updated = nextEvent(connection, 'session.updated')
    rt.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], instructions: 'Answer briefly.' } })
    const { session } = await updated
    expect(session.type).toBe('realtime')
    if (session.type === 'realtime') {
      expect(session.output_modalities).toEqual(['text'])
      expect(session.instructions).toBe('Answer briefly.')
    }

    const done = nextEvent(connection, 'response.done')
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Say hello.' }] } })
    rt.send({ type: 'response.create' })
    const { response } = await done

    expect(deltas.length).toBeGreaterThan(1)
    expect(deltas.join('')).toBe(reply)
    expect(response.status).toBe('completed')
    expect(typeof response.usage?.input_tokens).toBe('number')
    expect(typeof response.usage?.output_tokens).toBe('number')
    const output = response.output?.[0]
    expect(output?.type).toBe('message')
    if (output?.type === 'message') expect(output.content).toEqual([{ type: 'output_text', text: reply }])

    // The upstream got the instructions and the user's message.
    const upstream = gw.sim.requests[0]
    expect(upstream?.body.messages).toEqual([
      { role: 'system', content: 'Answer briefly.' },
      { role: 'user', content: 'Say hello.' }
    ])

    // Every event the SDK received carries a unique string event_id.
    const ids = connection.events.map((event) => (event as { event_id?: unknown }).event_id)
    for (const id of ids) expect(typeof id).toBe('string')
    expect(new Set(ids).size).toBe(ids.length)
    expect(connection.errors).toEqual([])
  })

  it('never forwards the client key upstream: the gateway uses its own upstream key', async () => {
    const { gw, cert } = await startTlsGateway()
    gw.sim.enqueue({ text: 'Keys stay where they belong.' })
    const connection = connect(gw, cert)
    await nextEvent(connection, 'session.created')
    const { response } = await textTurn(connection, 'Who holds the key?')
    expect(response.status).toBe('completed')

    expect(gw.sim.requests).toHaveLength(1)
    const headers = gw.sim.requests[0]?.headers
    expect(headers?.authorization).toBe(`Bearer ${UPSTREAM_KEY}`)
    expect(JSON.stringify(headers)).not.toContain(CLIENT_KEY)
    // Nor does the client's key end up in the gateway's logs.
    expect(gw.log.text()).not.toContain(CLIENT_KEY)
    expect(connection.errors).toEqual([])
  })

  describe('with GATEWAY_API_KEYS', () => {
    const env = { GATEWAY_API_KEYS: 'gw-test-key-1:tenant-a' }

    it('accepts a client whose apiKey is a configured gateway key', async () => {
      const { gw, cert } = await startTlsGateway(env)
      gw.sim.enqueue({ text: 'Welcome, tenant A.' })
      const connection = connect(gw, cert, 'gw-test-key-1')
      await nextEvent(connection, 'session.created')
      const { response } = await textTurn(connection, 'Am I in?')
      expect(response.status).toBe('completed')
      // The gateway key is not an upstream key either.
      expect(gw.sim.requests[0]?.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`)
      expect(connection.errors).toEqual([])
    })

    it('refuses a wrong key at the handshake: the SDK emits an error for the 401 and the socket closes', async () => {
      const { gw, cert } = await startTlsGateway(env)
      const connection = connect(gw, cert, 'gw-wrong-key')
      const error = await nextError(connection)
      expect(error.message).toBe('Unexpected server response: 401')
      expect(await connection.closed).toBe(1006)
      expect(connection.events).toEqual([])
      expect(gw.sim.requests).toEqual([])
    })

    it('answers a wrong key with HTTP 401 and an OpenAI-style error body', async () => {
      const { gw, cert } = await startTlsGateway(env)
      const connection = connect(gw, cert, 'gw-wrong-key')
      const res = await new Promise<IncomingMessage>((resolve) => {
        connection.rt.socket.once('unexpected-response', (_req, response) => resolve(response))
      })
      const chunks: Buffer[] = []
      for await (const chunk of res) chunks.push(chunk as Buffer)
      expect(res.statusCode).toBe(401)
      expect(JSON.parse(Buffer.concat(chunks).toString('utf8'))).toEqual({
        error: { type: 'invalid_request_error', code: 'invalid_api_key', message: expect.any(String) }
      })
      // With an 'unexpected-response' listener, ws leaves aborting the handshake to us.
      connection.rt.socket.terminate()
      expect(await connection.closed).toBe(1006)
      expect(connection.events).toEqual([])
      expect(gw.sim.requests).toEqual([])
    })
  })
})
