/**
 * Issue 5: a fuzz test. Thousands of random and mutated client frames — wrong types, missing and
 * extra fields, huge strings, unknown and audio events, random unicode, long arrays, objects
 * nested up to 10,000 deep, binary and empty frames, floods past MAX_PENDING_EVENTS, and frames
 * that must end the socket (invalid UTF-8, over MAX_FRAME_BYTES, unmasked) — against the real
 * gateway process. Every frame must get its answer (an `error` with the right code and the
 * client's event_id, the event a valid request produces, or a close code); the gateway must stay
 * alive, healthy and usable, with bounded memory. Deterministic: the seed is in the test name
 * (TOKENWIRE_FUZZ_SEED overrides it).
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import { startChildGateway, type ChildGateway, type ChildLogLine } from '../helpers/child-gateway.js'
import { FrameFuzzer, type FuzzFrame, type SocketModel } from '../helpers/fuzz-frames.js'
import { TestClient, textOf, type ServerEventLike } from '../helpers/ws-client.js'

const SEED = Number(process.env['TOKENWIRE_FUZZ_SEED'] ?? 0x5eed0005)
const MAX_FRAME_BYTES = 65_536
const MAX_ITEM_BYTES = 16_384
const MAX_PENDING_EVENTS = 64
/** At least this many frames are sent in all. */
const MIN_FRAMES = 5_000
/** Longest wait for any one answer: generous for a loaded 2-core machine, far below the test timeout. */
const ANSWER_TIMEOUT_MS = 5_000
/**
 * RSS the gateway may have grown by after the fuzz. What it legitimately keeps: the ~50
 * conversations the fuzz opened (memory store), each with at most a few dozen items of at most
 * ~2.4 KB and their log events — under 8 MB — plus V8 heap grown to parse ~30 MB of frames (up
 * to 64 KiB each), which V8 keeps for reuse rather than returning at once. A per-frame or
 * per-socket leak of the inputs (thousands of frames, tens of KB each) would exceed it.
 */
const RSS_HEADROOM_BYTES = 48 * 1024 * 1024
const MiB = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

let sim: Simulator
let gw: ChildGateway

/** Filled by the fuzz run, read by the checks after it. */
const observed = {
  done: false,
  frames: 0,
  /** Bytes of every frame sent. */
  bytes: 0,
  sockets: 0,
  closeCodes: new Map<number, number>(),
  /** Frames with a readable event_id answered by an error whose event_id was null. */
  echoViolations: [] as string[],
  pendingRejections: 0,
  turns: 0,
  /** Gateway log lines at level error or above, printed while the fuzz ran. */
  errorLogs: [] as ChildLogLine[]
}

beforeAll(async () => {
  sim = await startSimulator({ defaults: { tokenDelayMs: 0 } })
  gw = await startChildGateway({
    OPENAI_BASE_URL: sim.baseURL,
    OPENAI_API_KEY: 'sk-test-not-real',
    MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
    MAX_ITEM_BYTES: String(MAX_ITEM_BYTES),
    MAX_PENDING_EVENTS: String(MAX_PENDING_EVENTS),
    BUILTIN_TOOLS: 'none'
  })
}, 70_000)

afterAll(async () => {
  await gw?.kill()
  await sim?.close()
})

/** Resolves with the next event (from the client's read position) that matches; rejects on timeout or close. */
async function nextMatching (client: TestClient, match: (event: ServerEventLike) => boolean, what: string, timeoutMs = ANSWER_TIMEOUT_MS): Promise<ServerEventLike> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    return await Promise.race([(async () => {
      for (;;) {
        const event = await client.next()
        if (match(event)) return event
      }
    })(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

function errorOf (event: ServerEventLike): { code: string, eventId: string | null, message: unknown } {
  const error = event['error'] as Record<string, unknown> | undefined
  return { code: String(error?.['code']), eventId: typeof error?.['event_id'] === 'string' ? error['event_id'] : null, message: error?.['message'] }
}

function itemIdOf (event: ServerEventLike): string {
  const item = event['item'] as Record<string, unknown> | undefined
  return String(item?.['id'])
}

/** Removes one occurrence of `value` from `list`; false if there was none. */
function take<T> (list: T[], value: T): boolean {
  const at = list.indexOf(value)
  if (at === -1) return false
  list.splice(at, 1)
  return true
}

/**
 * Checks that `events` are exactly the answers `frames` are owed. In a flood any frame may have
 * been refused with too_many_pending_events instead (that is its answer).
 */
function matchAnswers (frames: readonly FuzzFrame[], events: readonly ServerEventLike[], flood: boolean): { problems: string[], missing: number } {
  const problems: string[] = []
  let missing = 0
  const errorsById = new Map<string, ServerEventLike[]>()
  const anonymousErrors: ServerEventLike[] = []
  const added: string[] = []
  const done: string[] = []
  const retrieved: string[] = []
  const deleted: string[] = []
  let sessionUpdates = 0
  for (const event of events) {
    if (event.type === 'error') {
      const { eventId, message } = errorOf(event)
      if (typeof message !== 'string' || message === '') problems.push(`error without a message: ${JSON.stringify(event).slice(0, 200)}`)
      if (eventId === null) anonymousErrors.push(event)
      else errorsById.set(eventId, [...errorsById.get(eventId) ?? [], event])
    } else if (event.type === 'conversation.item.added') added.push(itemIdOf(event))
    else if (event.type === 'conversation.item.done') done.push(itemIdOf(event))
    else if (event.type === 'conversation.item.retrieved') retrieved.push(itemIdOf(event))
    else if (event.type === 'conversation.item.deleted') deleted.push(String(event['item_id']))
    else if (event.type === 'session.updated') sessionUpdates++
    else problems.push(`unexpected ${event.type}: ${JSON.stringify(event).slice(0, 200)}`)
  }

  const anonymousCodes: string[] = []
  let sessionFrames = 0
  for (const frame of frames) {
    const expected = frame.expect
    switch (expected.kind) {
      case 'error': {
        if (expected.eventId === null) {
          anonymousCodes.push(expected.code)
          break
        }
        const answers = errorsById.get(expected.eventId) ?? []
        const answer = answers.shift()
        if (answer === undefined) {
          // Its event_id was readable; an anonymous error with its code may still be its answer.
          const stand = anonymousErrors.findIndex((e) => errorOf(e).code === expected.code)
          if (stand !== -1) {
            anonymousErrors.splice(stand, 1)
            observed.echoViolations.push(`${frame.label}: ${expected.code} came back with event_id null instead of ${JSON.stringify(expected.eventId.slice(0, 40))}`)
          } else {
            missing++
            problems.push(`no answer to "${frame.label}" (event_id ${expected.eventId.slice(0, 40)}): expected error ${expected.code}`)
          }
          break
        }
        const { code } = errorOf(answer)
        if (flood && code === 'too_many_pending_events') observed.pendingRejections++
        else if (code !== expected.code) problems.push(`"${frame.label}" got error ${code}, expected ${expected.code}`)
        break
      }
      case 'item':
        if (!take(added, expected.itemId) || !take(done, expected.itemId)) {
          missing++
          problems.push(`no conversation.item.added and .done for "${frame.label}" (${expected.itemId})`)
        }
        break
      case 'session':
        sessionFrames++
        break
      case 'retrieved':
        if (!take(retrieved, expected.itemId)) {
          missing++
          problems.push(`no conversation.item.retrieved for "${frame.label}" (${expected.itemId})`)
        }
        break
      case 'deleted':
        if (!take(deleted, expected.itemId)) {
          missing++
          problems.push(`no conversation.item.deleted for "${frame.label}" (${expected.itemId})`)
        }
        break
      case 'close':
        problems.push(`fuzzer bug: closing frame "${frame.label}" in a burst`)
    }
  }
  const gotCodes = anonymousErrors.map((e) => errorOf(e).code).sort()
  anonymousCodes.sort()
  if (gotCodes.length < anonymousCodes.length) missing += anonymousCodes.length - gotCodes.length
  if (JSON.stringify(gotCodes) !== JSON.stringify(anonymousCodes)) {
    problems.push(`errors without event_id: got [${gotCodes.join(', ')}], expected [${anonymousCodes.join(', ')}]`)
  }
  if (sessionUpdates < sessionFrames) missing += sessionFrames - sessionUpdates
  if (sessionUpdates !== sessionFrames) problems.push(`${sessionUpdates} session.updated for ${sessionFrames} valid session.update frames`)
  for (const [eventId, left] of errorsById) {
    for (const extra of left) problems.push(`unexpected error ${errorOf(extra).code} for event_id ${eventId.slice(0, 40)}`)
  }
  for (const id of added) problems.push(`unexpected conversation.item.added ${id}`)
  for (const id of done) problems.push(`unexpected conversation.item.done ${id}`)
  for (const id of retrieved) problems.push(`unexpected conversation.item.retrieved ${id}`)
  for (const id of deleted) problems.push(`unexpected conversation.item.deleted ${id}`)
  return { problems, missing }
}

/** One fuzzed socket: bursts of frames, each checked against its answers, then maybe a frame that must close it. */
class FuzzSession {
  readonly client: TestClient
  readonly model: SocketModel = { items: [] }
  readonly problems: string[] = []
  #read = 0
  #probes = 0

  constructor (client: TestClient) {
    this.client = client
    this.#read = client.events.length // session.created
  }

  send (frame: FuzzFrame): void {
    observed.bytes += typeof frame.data === 'string' ? Buffer.byteLength(frame.data) : frame.data.length
    this.client.ws.send(frame.data, { binary: frame.binary, ...(frame.mask === false ? { mask: false } : {}) })
  }

  /** Sends the frames at once, then proves every one was answered. */
  async burst (frames: readonly FuzzFrame[], flood: boolean): Promise<void> {
    for (const frame of frames) this.send(frame)
    try {
      await this.#sync()
    } catch (err) {
      if (this.client.ws.readyState === this.client.ws.OPEN) throw err
      const { code } = await this.client.closed
      this.problems.push(`socket closed with ${code} in a burst of ${frames.length} frames that must not close it: ${frames.map((f) => f.label).join('; ').slice(0, 500)}`)
      return
    }
    const probeId = (e: ServerEventLike): boolean => e.type === 'error' && (errorOf(e).eventId ?? '').startsWith('probe-')
    let window = this.client.events.slice(this.#read).filter((e) => !probeId(e))
    let result = matchAnswers(frames, window, flood)
    // Events of one socket are handled in order, so the probe's answer comes last; allow a
    // little time only in case a missing answer is merely late, then report it.
    const deadline = Date.now() + 1_000
    while (result.missing > 0 && Date.now() < deadline && this.client.ws.readyState === this.client.ws.OPEN) {
      await nextMatching(this.client, () => true, 'late answer', Math.max(1, deadline - Date.now())).catch(() => undefined)
      window = this.client.events.slice(this.#read).filter((e) => !probeId(e))
      result = matchAnswers(frames, window, flood)
    }
    this.problems.push(...result.problems)
    this.#read = this.client.events.length
  }

  /** A valid turn in the middle of the fuzz: it must complete with the simulator's exact text. */
  async turn (fuzzer: FrameFuzzer, n: number): Promise<void> {
    const { frame, itemId } = fuzzer.userItem(`deliberate turn ${n} ${fuzzer.unicode(20)}`)
    this.send(frame)
    await nextMatching(this.client, (e) => e.type === 'conversation.item.done' && itemIdOf(e) === itemId, `conversation.item.done of turn ${n}`)
    const text = `Fuzz turn ${n} still completes: ${fuzzer.unicode(12, false)}.`
    sim.enqueue({ text, tokenDelayMs: 1 })
    this.client.send({ type: 'response.create', event_id: `turn-${n}`, response: { max_output_tokens: 'inf', tool_choice: 'none' } })
    const created = await nextMatching(this.client, (e) => e.type === 'response.created' || e.type === 'error', `response.created of turn ${n}`)
    expect(created.type, JSON.stringify(created)).toBe('response.created')
    const events: ServerEventLike[] = [created]
    for (;;) {
      const event = await nextMatching(this.client, () => true, `response.done of turn ${n}`)
      events.push(event)
      if (event.type === 'response.done') break
    }
    expect((events.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
    expect(textOf(events)).toBe(text)
    this.#read = this.client.events.length
    observed.turns++
  }

  /** Sends `probe-N` retrieves until one is handled (not refused as pending): every earlier frame has been answered. */
  async #sync (): Promise<ServerEventLike> {
    for (let attempt = 0; attempt < 200; attempt++) {
      const id = `probe-${this.#probes++}`
      this.client.send({ type: 'conversation.item.retrieve', event_id: id, item_id: `probe_${id.slice(6)}` })
      const answer = await nextMatching(this.client, (e) => e.type === 'error' && errorOf(e).eventId === id, `answer to ${id}`)
      const { code } = errorOf(answer)
      if (code === 'item_not_found') return answer
      expect(code).toBe('too_many_pending_events')
    }
    throw new Error('200 probes refused as pending')
  }
}

describe(`the gateway under fuzzed client frames (seed ${SEED})`, () => {
  it('answers every frame with its error, its event or a close code, and stays alive, healthy and bounded', async () => {
    const fuzzer = new FrameFuzzer(SEED, { maxFrameBytes: MAX_FRAME_BYTES, maxItemBytes: MAX_ITEM_BYTES })

    // Warm up (JIT, first upstream connection), then take the baseline.
    const warm = await TestClient.connect(gw.url)
    sim.enqueue({ text: 'warm up', tokenDelayMs: 0 })
    expect(textOf(await warm.ask('hello'))).toBe('warm up')
    await warm.close()
    const startRss = await gw.rssBytes()
    let peakRss = startRss
    const sampler = setInterval(() => {
      gw.rssBytes().then((rss) => { peakRss = Math.max(peakRss, rss) }, () => {})
    }, 100)
    const logsBefore = gw.logs.length
    const problems: string[] = []

    try {
      while (observed.frames < MIN_FRAMES) {
        const index = observed.sockets++
        const session = new FuzzSession(await TestClient.connect(gw.url))
        const bursts = fuzzer.int(1, 3)
        for (let b = 0; b < bursts; b++) {
          const flood = fuzzer.random() < 0.15
          const frames = flood
            ? Array.from({ length: fuzzer.int(MAX_PENDING_EVENTS + 16, MAX_PENDING_EVENTS * 3) }, () => fuzzer.stateless())
            : Array.from({ length: fuzzer.int(5, 40) }, () => fuzzer.next(session.model))
          observed.frames += frames.length
          await session.burst(frames, flood)
          if (session.problems.length > 0) break
          if (index % 8 === 3 && b === 0) await session.turn(fuzzer, index)
        }
        if (session.problems.length > 0) {
          await session.client.close()
        } else if (fuzzer.random() < 0.6) {
          const last = fuzzer.closing()
          observed.frames++
          const eventsBefore = session.client.events.length
          session.send(last)
          const { code } = await Promise.race([
            session.client.closed,
            new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`socket not closed ${ANSWER_TIMEOUT_MS} ms after "${last.label}"`)), ANSWER_TIMEOUT_MS).unref())
          ])
          observed.closeCodes.set(code, (observed.closeCodes.get(code) ?? 0) + 1)
          if (last.expect.kind === 'close' && code !== last.expect.code) session.problems.push(`"${last.label}" closed the socket with ${code}, expected ${last.expect.code}`)
          for (const event of session.client.events.slice(eventsBefore)) session.problems.push(`unexpected ${event.type} after "${last.label}"`)
        } else {
          await session.client.close()
        }
        problems.push(...session.problems.map((p) => `socket ${index}: ${p}`))
        if (problems.length > 0) break // the first socket that went wrong says enough
      }
    } finally {
      clearInterval(sampler)
      observed.errorLogs.push(...gw.logs.slice(logsBefore).filter((line) => (line.level ?? 0) >= 50))
    }
    expect(problems.slice(0, 30), `${problems.length} problems`).toEqual([])
    expect(observed.frames).toBeGreaterThanOrEqual(MIN_FRAMES)
    expect(observed.pendingRejections, 'floods past MAX_PENDING_EVENTS were refused in part').toBeGreaterThan(0)
    expect(observed.turns).toBeGreaterThanOrEqual(3)

    // Alive, healthy, usable.
    expect(gw.alive).toBe(true)
    const health = await fetch(`${gw.httpOrigin}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: 'ok' })
    const fresh = await TestClient.connect(gw.url)
    sim.enqueue({ text: 'After the fuzz, a normal turn.', tokenDelayMs: 1 })
    const events = await fresh.ask('are you still there?')
    expect(textOf(events)).toBe('After the fuzz, a normal turn.')
    expect((events.at(-1)?.['response'] as Record<string, unknown>)['status']).toBe('completed')
    await fresh.close()

    // Bounded memory: RSS settles within the headroom (polled, not slept: it passes as soon as it holds).
    const bound = startRss + RSS_HEADROOM_BYTES
    let endRss = await gw.rssBytes()
    for (const settleBy = Date.now() + 5_000; endRss >= bound && Date.now() < settleBy;) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      endRss = await gw.rssBytes()
    }
    console.log(`fuzz seed ${SEED}: ${observed.frames} frames (${MiB(observed.bytes)}) on ${observed.sockets} sockets, ${observed.turns} turns, ` +
      `${observed.pendingRejections} refused as pending, close codes ${JSON.stringify([...observed.closeCodes])}; ` +
      `gateway RSS start ${MiB(startRss)}, peak ${MiB(peakRss)}, end ${MiB(endRss)} (bound ${MiB(bound)})`)
    expect(endRss).toBeLessThan(bound)
    observed.done = true
  }, 60_000)

  it('closes sockets only with close codes the README documents', () => {
    expect(observed.done, 'the fuzz run completed').toBe(true)
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const section = readme.slice(readme.indexOf('### Close codes'))
    const table = section.slice(0, section.indexOf('\n## '))
    const documented = new Set([...table.matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1])))
    expect(documented.size).toBeGreaterThan(0)
    const used = [...observed.closeCodes.keys()].sort()
    expect(used.filter((code) => !documented.has(code)), `close codes used: ${used.join(', ')}; documented: ${[...documented].join(', ')}`).toEqual([])
  })

  it('echoes the client\'s event_id in every error whose frame had a readable one (objects nested too deep included)', () => {
    expect(observed.done, 'the fuzz run completed').toBe(true)
    expect(observed.echoViolations.slice(0, 10), `${observed.echoViolations.length} errors without their event_id`).toEqual([])
  })

  it('logs client garbage below error level (error is for gateway faults)', () => {
    expect(observed.done, 'the fuzz run completed').toBe(true)
    const lines = observed.errorLogs.map((line) => `${String(line.msg)} ${JSON.stringify((line['err'] as Record<string, unknown> | undefined)?.['code'] ?? '')}`)
    expect(lines.slice(0, 10), `${lines.length} error-level log lines`).toEqual([])
  })
})
