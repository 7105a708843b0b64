/**
 * Issue 5: a client that stops reading (TCP-level pause) while a long, fast reply streams is
 * closed with 4008 once MAX_PENDING_BYTES wait for it, the gateway holds no more than that for
 * it (every byte it later reads is accounted for by the kernel's queues plus that limit), its
 * memory stays bounded while the reply goes on, and a resume from its last event_id gets the
 * rest of the reply exactly. On the real gateway process, so its RSS is its own.
 */
import type { Socket } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseEventId } from '../../src/store/conversation-store.js'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { startChildGateway, type ChildGateway } from '../helpers/child-gateway.js'
import { tcpQueues } from '../helpers/tcp-queues.js'
import { TestClient, textOf, userMessage, type ServerEventLike } from '../helpers/ws-client.js'

const MAX_PENDING_BYTES = 256 * 1024
/** One character per delta, so the deltas (~190 bytes each on the wire) far outweigh the kernel's socket buffers (~4 MB on loopback). */
const REPLY_DELTAS = 45_000
/**
 * RSS the gateway may grow by while the client is paused: the reply's own cost — ~45,000 log
 * events (~190 bytes each, ~9 MB as JS strings in the memory store) plus the upstream stream's
 * parse garbage — is about 30 MB; holding the paused client's frames would add theirs on top.
 */
const RSS_HEADROOM_BYTES = 64 * 1024 * 1024
/** Data a paused ws client may already hold in user space (a socket read or two of 64 KiB), beyond the kernel queues. */
const CLIENT_READ_SLACK_BYTES = 128 * 1024
const MiB = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

/** 'a0.b1.c2.…': the simulator streams it one character per delta. */
function oneCharacterPieces (count: number): string {
  let text = ''
  for (let i = 0; text.length < count; i++) text += `${String.fromCharCode(97 + (i % 26))}${i % 10}.`
  return text.slice(0, count)
}

/** Bytes a server frame with this payload takes on the wire (unmasked header + payload). */
function wireBytes (payload: number): number {
  return payload + (payload < 126 ? 2 : payload < 65_536 ? 4 : 10)
}

function seqOf (event: ServerEventLike): number | undefined {
  return parseEventId(event.event_id)?.seq
}

async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

const clients: TestClient[] = []
async function connect (url: string): Promise<TestClient> {
  const client = await TestClient.connect(url)
  clients.push(client)
  return client
}
afterEach(async () => { await Promise.allSettled(clients.splice(0).map(async (c) => c.close())) })

describe('a paused client on the gateway process', () => {
  let sim: Simulator
  let gw: ChildGateway
  beforeAll(async () => {
    sim = await startSimulator()
    gw = await startChildGateway({
      OPENAI_BASE_URL: sim.baseURL,
      OPENAI_API_KEY: 'sk-test-not-real',
      MAX_PENDING_BYTES: String(MAX_PENDING_BYTES),
      EVENT_LOG_MAX_EVENTS: String(REPLY_DELTAS * 2),
      ON_DISCONNECT: 'continue'
    })
  }, 70_000)
  afterAll(async () => {
    await gw?.kill()
    await sim?.close()
  })

  it('is closed with 4008, costs the gateway no more than MAX_PENDING_BYTES, and resumes to the exact reply', async () => {
    // Warm up, then take the baseline.
    const warm = await connect(gw.url)
    sim.enqueue({ text: 'warm up' })
    expect(textOf(await warm.ask('hi'))).toBe('warm up')
    await sim.nextRequest()
    const baseline = await gw.rssBytes()

    const client = await connect(gw.url)
    const tcp = (client.ws as unknown as { _socket: Socket })._socket
    let paused = false
    let resumed = false
    let bytesAfterResume = 0
    client.ws.on('message', (data: Buffer) => {
      if (resumed) bytesAfterResume += wireBytes(data.length)
      if (!paused && data.includes('"type":"response.created"')) {
        paused = true
        client.ws.pause() // stops reading the TCP socket: the kernel's buffers fill, then the gateway's
      }
    })
    let peak = baseline
    const sampler = setInterval(() => { gw.rssBytes().then((rss) => { peak = Math.max(peak, rss) }, () => {}) }, 50)

    const text = oneCharacterPieces(REPLY_DELTAS)
    sim.enqueue({ text, tokenDelayMs: 0 })
    client.send(userMessage('stream a very long reply'))
    client.send({ type: 'response.create' })
    const upstream = await sim.nextRequest()

    let slow: Record<string, unknown>
    let serverQueue: Awaited<ReturnType<typeof tcpQueues>>
    let clientQueue: Awaited<ReturnType<typeof tcpQueues>>
    try {
      slow = await gw.waitForLog((line) => line.msg === 'slow consumer', 30_000)
      expect(paused).toBe(true)
      // The gateway stopped at the limit: what it still held for this client was under it.
      expect(Number(slow['bufferedAmount'])).toBeLessThanOrEqual(MAX_PENDING_BYTES)
      await gw.waitForLog((line) => line.msg === 'session closed' && line['code'] === 4008, 5_000)
      // Everything else is in the kernel now: the gateway's send queue and the client's receive queue.
      serverQueue = await tcpQueues(gw.port, tcp.localPort ?? 0)
      clientQueue = await tcpQueues(tcp.localPort ?? 0, gw.port)
      // The reply goes on without the paused client (ON_DISCONNECT=continue) to its end upstream.
      expect(await within(upstream.ended, 30_000, 'the upstream reply')).toBe('finished')
    } finally {
      clearInterval(sampler)
    }
    console.log(`slow client: gateway RSS baseline ${MiB(baseline)}, peak while paused ${MiB(peak)}; ` +
      `closed holding ${String(slow['bufferedAmount'])} bytes; kernel queues: gateway send ${serverQueue?.tx ?? '?'}, client receive ${clientQueue?.rx ?? '?'}`)
    expect(peak).toBeLessThan(baseline + RSS_HEADROOM_BYTES)
    expect(serverQueue).toBeDefined()
    expect(clientQueue).toBeDefined()

    // Reading again, the client gets what was queued, then the close frame: 4008.
    resumed = true
    client.ws.resume()
    const { code, reason } = await within(client.closed, 10_000, 'the close after resuming')
    expect(code).toBe(4008)
    expect(reason).toContain('MAX_PENDING_BYTES')
    const first = client.events
    // Closed mid-reply: its end is not among what it got.
    expect(first.some((e) => e.type === 'response.done')).toBe(false)
    expect(first.some((e) => e.type === 'response.output_text.delta')).toBe(true)
    // Every byte it read after resuming was in the kernel's queues or in the gateway's bounded buffer.
    const accounted = (serverQueue?.tx ?? 0) + (clientQueue?.rx ?? 0) + MAX_PENDING_BYTES + CLIENT_READ_SLACK_BYTES
    console.log(`slow client: read ${bytesAfterResume} bytes after resuming (${first.length} events before the 4008), at most ${accounted} accounted for`)
    expect(bytesAfterResume).toBeLessThanOrEqual(accounted)

    // Resume from the last cursor (a real client would also reconnect after a 4008): the rest, exactly.
    const received = [...first]
    for (let attempt = 0; attempt < 5 && !received.some((e) => e.type === 'response.done'); attempt++) {
      const cursor = received.filter((e) => seqOf(e) !== undefined).at(-1)
      if (cursor === undefined) throw new Error('no cursor event received')
      const again = await connect(`${gw.url}&conversation_id=${client.conversationId}&resume_after=${cursor.event_id}`)
      // The replay may come in the same read as session.created: count from there, not from connect().
      const before = again.events.findIndex((e) => e.type === 'session.created') + 1
      await within(again.until('response.done').catch(() => []), 30_000, 'the rest of the reply')
      const rest = again.events.slice(before)
      expect(rest.length, 'each resume makes progress').toBeGreaterThan(0)
      received.push(...rest)
    }
    const logged = received.filter((e) => seqOf(e) !== undefined)
    const seqs = logged.map((e) => seqOf(e) ?? 0)
    expect(new Set(logged.map((e) => e.event_id)).size, 'no event twice').toBe(logged.length)
    expect(seqs.every((seq, i) => i === 0 || seq === (seqs[i - 1] ?? 0) + 1), 'no event missing').toBe(true)
    expect(textOf(received)).toBe(text)
    const done = received.find((e) => e.type === 'response.done')
    expect((done?.['response'] as Record<string, unknown> | undefined)?.['status']).toBe('completed')
    expect(received.filter((e) => e.type === 'response.output_text.delta').length).toBe(REPLY_DELTAS)
  }, 60_000)
})

describe('a client that reads promptly', () => {
  const LIMIT = 16 * 1024
  let gw: TestGateway | undefined
  beforeAll(async () => { gw = await startGateway({ env: { MAX_PENDING_BYTES: String(LIMIT) } }) })
  afterAll(async () => { await gw?.close() })

  /** Resolves with the events through `type`, or with the close code if the socket closes first. */
  async function untilOrClosed (client: TestClient, type: string): Promise<{ events: ServerEventLike[], code: number | undefined }> {
    return within(Promise.race([
      client.until(type).then((events) => ({ events, code: undefined })),
      client.closed.then(({ code }) => ({ events: client.events, code }))
    ]), 20_000, type)
  }

  it('is not closed when one event (session.updated echoing long instructions) is larger than MAX_PENDING_BYTES', async () => {
    if (gw === undefined) throw new Error('no gateway')
    const client = await connect(gw.url)
    const instructions = 'Answer briefly. '.repeat(1_300)
    expect(instructions.length).toBeGreaterThan(LIMIT)
    client.send({ type: 'session.update', session: { instructions } })
    const outcome = await untilOrClosed(client, 'session.updated')
    expect(outcome.code, 'closed although nothing was queued for it').toBeUndefined()
    expect((outcome.events.at(-1)?.['session'] as Record<string, unknown> | undefined)?.['instructions']).toBe(instructions)
  })

  it('is not closed when a reply\'s text (carried whole by its .done events) is larger than MAX_PENDING_BYTES', async () => {
    if (gw === undefined) throw new Error('no gateway')
    const text = Array.from({ length: 1_740 }, (_, i) => ` word${String(i).padStart(5, '0')}`).join('')
    expect(text.length).toBeGreaterThan(LIMIT)
    gw.sim.enqueue({ text, tokenDelayMs: 0 })
    const client = await connect(gw.url)
    client.send(userMessage('a long answer, please'))
    client.send({ type: 'response.create' })
    const outcome = await untilOrClosed(client, 'response.done')
    // It read every delta as it came, so nothing was queued for it…
    expect(textOf(outcome.events)).toBe(text)
    // …and an event bigger than the limit on an empty queue is no reason to close it.
    expect(outcome.code, 'closed although it had read everything').toBeUndefined()
  })
})
