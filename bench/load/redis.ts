/**
 * Redis-mode benchmark, all on loopback, in one process, against a throwaway redis-server
 * (test/helpers/redis.ts, a free port, no persistence):
 *
 * 1. Redis commands per relayed token: one gateway with REDIS_URL and one with the memory store,
 *    each in front of its own simulator (same pacing), N sessions x T turns, rounds alternating
 *    like run.ts. `INFO stats` / `INFO commandstats` are read on a separate connection before
 *    and after the measured rounds; the difference, minus the INFO calls themselves, is divided
 *    by the `response.output_text.delta` events the clients of the Redis gateway received.
 *    TTFT and inter-token gaps are reported for both gateways (redis / memory).
 * 2. Reconnect to another instance: a client on instance A cuts its socket at the 5th delta of
 *    a slow reply and reconnects to instance B (same Redis) with `conversation_id` and
 *    `resume_after`; timed from `new WebSocket()` to `session.created` and to the first
 *    replayed `response.*` event; every trial is checked for duplicate event_ids and for
 *    text-before + text-after === the full reply.
 *
 *    Two variants, interleaved: reconnect at once (the next event may not exist yet, so the
 *    first one is usually live), and reconnect after --offline-ms (the first ones come from
 *    the log: the replay path itself).
 *
 *   npx tsx bench/load/redis.ts [--sessions 10] [--turns 5] [--trials 30] [--duration-s 60]
 *     [--token-delay-ms 2] [--first-token-delay-ms 5] [--resume-token-delay-ms 10]
 *     [--offline-ms 50] [--out bench/results/redis-latest.json]
 */
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import type { AddressInfo } from 'node:net'
import { availableParallelism, cpus } from 'node:os'
import { resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { tokenize } from '../../src/simulator/scenario.js'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import { parseEventId } from '../../src/store/conversation-store.js'
import { startRedis, type RedisServer } from '../../test/helpers/redis.js'
import {
  GatewaySession, MODEL, Recorder, TURN_TIMEOUT_MS, UsageError, finite, intFlag, mb, round3, summarize, writeJson,
  type ServerEvent, type Summary, type TurnSample
} from './common.js'

/** Past each part's duration cap, the run is abandoned after this much more time. */
const WATCHDOG_GRACE_MS = 75_000
const DEFAULT_OUT = fileURLToPath(new URL('../results/redis-latest.json', import.meta.url))
/** Part 1's reply: about 200 deltas. */
const REPLY_TEXT = buildReply(200)
/**
 * Part 2's reply: about 60 deltas, so with 10 ms pacing it still streams for about half a
 * second after the reconnect (far longer than the reconnect itself), and 2 x 30 trials stay short.
 */
const RESUME_TEXT = buildReply(60)
/** The client on instance A cuts its socket right after this many text deltas. */
const CUT_AFTER_DELTAS = 5

/** A fixed text that the simulator streams as at least `minDeltas` deltas. */
function buildReply (minDeltas: number): string {
  const sentences = [
    'Tokenwire keeps every conversation event in a log, so a client that drops can resume exactly where it left off.',
    'In Redis mode each batch of events is one script call that stamps, stores and publishes them together.',
    'This reply is long on purpose, so the cost of the log can be measured per relayed token.'
  ]
  let text = ''
  for (let i = 0; tokenize(text).length < minDeltas; i++) text += `${i === 0 ? '' : ' '}${sentences[i % sentences.length] ?? ''}`
  return text
}

// ---------------------------------------------------------------------------------------------
// CLI

interface Options {
  sessions: number
  turns: number
  trials: number
  durationS: number
  tokenDelayMs: number
  firstTokenDelayMs: number
  resumeTokenDelayMs: number
  offlineMs: number
  out: string
}

const USAGE = `usage: npx tsx bench/load/redis.ts [options]
  --sessions N               concurrent sessions per round, part 1 (default 10, 1..1000)
  --turns N                  measured turns per session, part 1 (default 5, 1..1000)
  --trials N                 measured reconnect trials per variant, part 2 (default 30, 1..1000)
  --duration-s N             cap on each part's measured work, in seconds (default 60)
  --token-delay-ms N         simulator pause between chunks, part 1 (default 2)
  --first-token-delay-ms N   simulator pause before the first chunk (default 5)
  --resume-token-delay-ms N  simulator pause between chunks, part 2 (default 10)
  --offline-ms N             part 2's second variant: time between the cut and the reconnect
                             (default 50; 0 runs only the immediate variant)
  --out PATH                 JSON results (default bench/results/redis-latest.json)`

function parseOptions (argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      sessions: { type: 'string', default: '10' },
      turns: { type: 'string', default: '5' },
      trials: { type: 'string', default: '30' },
      'duration-s': { type: 'string', default: '60' },
      'token-delay-ms': { type: 'string', default: '2' },
      'first-token-delay-ms': { type: 'string', default: '5' },
      'resume-token-delay-ms': { type: 'string', default: '10' },
      'offline-ms': { type: 'string', default: '50' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  return {
    sessions: intFlag('sessions', values.sessions, 1, 1000),
    turns: intFlag('turns', values.turns, 1, 1000),
    trials: intFlag('trials', values.trials, 1, 1000),
    durationS: intFlag('duration-s', values['duration-s'], 1, 3600),
    tokenDelayMs: intFlag('token-delay-ms', values['token-delay-ms'], 0, 10_000),
    firstTokenDelayMs: intFlag('first-token-delay-ms', values['first-token-delay-ms'], 0, 60_000),
    resumeTokenDelayMs: intFlag('resume-token-delay-ms', values['resume-token-delay-ms'], 1, 10_000),
    offlineMs: intFlag('offline-ms', values['offline-ms'], 0, 10_000),
    out: values.out === undefined ? DEFAULT_OUT : resolve(process.cwd(), values.out)
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

interface Gateway {
  readonly app: FastifyInstance
  /** `ws://127.0.0.1:PORT/v1/realtime?model=…` */
  readonly url: string
}

/** The real gateway (loadConfig + buildApp + listen on 127.0.0.1:0), silent, no heartbeat. */
async function startGateway (sim: Simulator, env: Record<string, string>, turns: number): Promise<Gateway> {
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    OPENAI_BASE_URL: sim.baseURL,
    OPENAI_API_KEY: 'bench-not-a-real-key',
    HEARTBEAT_INTERVAL_MS: '0',
    MAX_ITEMS_PER_CONVERSATION: String(Math.max(1000, 2 * (turns + 1) + 10)),
    ...env
  })
  const app = await buildApp({ config })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return { app, url: `ws://127.0.0.1:${port}/v1/realtime?model=${MODEL}` }
}

interface CommandCount { calls: number, usec: number }
interface InfoSample { total: number, commands: Map<string, CommandCount> }

/** A separate ioredis connection that reads INFO and counts its own INFO calls. */
class RedisProbe {
  /** INFO calls this probe sent (Redis counts a call only after it ran, so not in its own reply). */
  infoCalls = 0
  readonly #client: Redis

  constructor (url: string) {
    this.#client = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000 })
  }

  async version (): Promise<string> {
    this.infoCalls++
    const text = await this.#client.call('INFO', 'server') as string
    return /^redis_version:(.*)$/m.exec(text)?.[1]?.trim() ?? 'unknown'
  }

  async sample (): Promise<InfoSample> {
    this.infoCalls++
    const text = await this.#client.call('INFO', 'stats', 'commandstats') as string
    const total = Number(/^total_commands_processed:(\d+)/m.exec(text)?.[1] ?? Number.NaN)
    const commands = new Map<string, CommandCount>()
    for (const [, name = '', calls = '0', usec = '0'] of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      commands.set(name, { calls: Number(calls), usec: Number(usec) })
    }
    return { total, commands }
  }

  /** Samples every 50 ms until only the probe's own INFO ran in between (at most ~2 s). */
  async quietSample (): Promise<InfoSample> {
    let sample = await this.sample()
    for (let i = 0; i < 40; i++) {
      await sleep(50)
      const next = await this.sample()
      const quiet = next.total - sample.total === 1
      sample = next
      if (quiet) break
    }
    return sample
  }

  async close (): Promise<void> {
    await this.#client.quit().catch(() => this.#client.disconnect())
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// Part 1: commands per token, TTFT redis vs memory

type Mode = 'redis' | 'memory'

interface CommandsReport {
  turns: number
  textDeltas: number
  totalCommands: number
  probeInfoCallsSubtracted: number
  perToken: number | null
  perTurn: number | null
  scriptCalls: number
  scriptCallsPerToken: number | null
  scriptUsecPerToken: number | null
  breakdown: Array<{ command: string, calls: number, perTurn: number | null, perToken: number | null, usec: number }>
}

function commandsReport (before: InfoSample, after: InfoSample, probeCalls: number, turns: number, textDeltas: number): CommandsReport {
  const totalCommands = after.total - before.total - probeCalls
  const breakdown: CommandsReport['breakdown'] = []
  for (const [command, { calls, usec }] of after.commands) {
    const prior = before.commands.get(command) ?? { calls: 0, usec: 0 }
    let delta = calls - prior.calls
    if (command === 'info') delta -= probeCalls
    if (delta <= 0) continue
    breakdown.push({ command, calls: delta, perTurn: finite(delta / turns), perToken: finite(delta / textDeltas), usec: usec - prior.usec })
  }
  breakdown.sort((a, b) => b.calls - a.calls || a.command.localeCompare(b.command))
  const scripts = breakdown.filter((c) => c.command === 'evalsha' || c.command === 'eval')
  const scriptCalls = scripts.reduce((sum, c) => sum + c.calls, 0)
  const scriptUsec = scripts.reduce((sum, c) => sum + c.usec, 0)
  return {
    turns,
    textDeltas,
    totalCommands,
    probeInfoCallsSubtracted: probeCalls,
    perToken: finite(totalCommands / textDeltas),
    perTurn: finite(totalCommands / turns),
    scriptCalls,
    scriptCallsPerToken: finite(scriptCalls / textDeltas),
    scriptUsecPerToken: finite(scriptUsec / textDeltas),
    breakdown
  }
}

interface Part1 {
  recorders: Record<Mode, Recorder>
  connectMs: Record<Mode, Summary>
  commands: CommandsReport
  roundsDone: number
  truncated: boolean
}

async function partOne (options: Options, redis: RedisServer, probe: RedisProbe): Promise<Part1> {
  const pacing = { firstTokenDelayMs: options.firstTokenDelayMs, tokenDelayMs: options.tokenDelayMs, text: REPLY_TEXT }
  const sims = await Promise.all([startSimulator({ defaults: pacing }), startSimulator({ defaults: pacing })])
  const [redisSim, memorySim] = sims
  const gateways: Gateway[] = []
  const sessions: Record<Mode, GatewaySession[]> = { redis: [], memory: [] }
  try {
    const redisGw = await startGateway(redisSim, { REDIS_URL: redis.url }, options.turns)
    gateways.push(redisGw)
    const memoryGw = await startGateway(memorySim, {}, options.turns)
    gateways.push(memoryGw)
    const connectMs = {} as Record<Mode, Summary>
    for (const [mode, gw] of [['redis', redisGw], ['memory', memoryGw]] as const) {
      const opened = await Promise.all(Array.from({ length: options.sessions }, (_, i) => GatewaySession.open(i, gw.url)))
      sessions[mode] = opened.map((o) => o.session)
      connectMs[mode] = summarize(opened.map((o) => o.connectMs))
    }

    const recorders: Record<Mode, Recorder> = { redis: new Recorder(), memory: new Recorder() }
    const textDeltas = (): number => sessions.redis.reduce((sum, s) => sum + s.textDeltas, 0)
    let before: InfoSample | undefined
    let probeCallsBefore = 0
    let deltasBefore = 0
    const deadline = performance.now() + options.durationS * 1000
    let roundsDone = 0
    let truncated = false
    // Round 0 warms both gateways and is discarded; the INFO window opens after it.
    for (let round = 0; round <= options.turns; round++) {
      if (round === 1) {
        before = await probe.quietSample()
        probeCallsBefore = probe.infoCalls
        deltasBefore = textDeltas()
      }
      if (round > 0 && performance.now() > deadline) {
        truncated = true
        break
      }
      const order: Mode[] = round % 2 === 0 ? ['redis', 'memory'] : ['memory', 'redis']
      for (const mode of order) {
        const start = performance.now()
        const results: Array<PromiseSettledResult<TurnSample>> = await Promise.allSettled(sessions[mode].map((s) => s.turn(round)))
        if (round === 0) continue
        recorders[mode].record(results)
        recorders[mode].phaseMs += performance.now() - start
      }
      if (round > 0) roundsDone++
    }
    // Lease releases follow response.done: wait until Redis is quiet before the last sample.
    const after = await probe.quietSample()
    const probeCalls = probe.infoCalls - probeCallsBefore
    if (before === undefined) throw new Error('no measured round ran')
    const redisTurns = roundsDone * options.sessions
    const commands = commandsReport(before, after, probeCalls, redisTurns, textDeltas() - deltasBefore)
    return { recorders, connectMs, commands, roundsDone, truncated }
  } finally {
    await Promise.allSettled([...sessions.redis, ...sessions.memory].map(async (s) => s.close()))
    await Promise.allSettled(gateways.map(async (g) => g.app.close()))
    await Promise.allSettled(sims.map(async (s) => s.close()))
  }
}

// ---------------------------------------------------------------------------------------------
// Part 2: reconnect to the other instance with resume_after

interface Stamped { event: ServerEvent, at: number }

/** A raw Realtime socket that keeps every event with its arrival time. */
class EventSocket {
  readonly events: Stamped[] = []
  readonly ws: WebSocket
  /** Set by `cut()`: later frames are ignored, as a client whose socket died never sees them. */
  #cut = false
  #closed = false
  readonly #waiters = new Set<() => void>()

  constructor (url: string, private readonly onEvent?: (stamped: Stamped, socket: EventSocket) => void) {
    this.ws = new WebSocket(url)
    this.ws.on('message', (data: Buffer) => {
      const at = performance.now()
      if (this.#cut) return
      const stamped = { event: JSON.parse(data.toString('utf8')) as ServerEvent, at }
      this.events.push(stamped)
      this.onEvent?.(stamped, this)
      for (const wake of [...this.#waiters]) wake()
    })
    this.ws.on('close', () => {
      this.#closed = true
      for (const wake of [...this.#waiters]) wake()
    })
    this.ws.on('error', () => { /* surfaced through 'close' */ })
  }

  send (event: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(event))
  }

  /** Drops the connection without a close handshake (a dead network, a killed tab). */
  cut (): void {
    this.#cut = true
    this.ws.terminate()
  }

  /** The first event at index >= `from` matching `match`; rejects on close or timeout. */
  waitFor (what: string, match: (event: ServerEvent) => boolean, from = 0): Promise<Stamped & { index: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`no ${what} within ${TURN_TIMEOUT_MS} ms`)), TURN_TIMEOUT_MS)
      const finish = (err?: Error, found?: Stamped & { index: number }): void => {
        clearTimeout(timer)
        this.#waiters.delete(check)
        if (found !== undefined) resolve(found)
        else reject(err ?? new Error(`no ${what}`))
      }
      const check = (): void => {
        for (let i = from; i < this.events.length; i++) {
          const stamped = this.events[i]
          if (stamped !== undefined && match(stamped.event)) return finish(undefined, { ...stamped, index: i })
        }
        if (this.#closed || this.#cut) finish(new Error(`socket closed before ${what}`))
      }
      this.#waiters.add(check)
      check()
    })
  }

  close (): void {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.terminate()
  }
}

interface Trial {
  /** `new WebSocket()` → `session.created`, in ms. */
  sessionCreatedMs: number
  /** `new WebSocket()` → the first `response.*` event after session.created, in ms. */
  firstReplayMs: number
  firstReplayType: string
  /** Events after session.created that came before the first response.* event. */
  eventsBeforeReplay: number
  deltasBefore: number
  deltasAfter: number
  duplicateIds: number
  textMatches: boolean
  status: string
}

const textOf = (events: readonly Stamped[]): string =>
  events.filter((s) => s.event.type === 'response.output_text.delta').map((s) => String(s.event['delta'])).join('')

/** Conversation (log) events carry a cursor `ev_<epoch>_<seq>`; session-local ones do not. */
const isLogEvent = (s: Stamped): boolean => typeof s.event['event_id'] === 'string' && parseEventId(s.event['event_id']) !== undefined

async function runTrial (urlA: string, urlB: string, offlineMs: number): Promise<Trial> {
  let cursor: string | undefined
  let deltas = 0
  const onA = new EventSocket(urlA, ({ event }, socket) => {
    if (event.type !== 'response.output_text.delta' || ++deltas !== CUT_AFTER_DELTAS) return
    cursor = String(event['event_id'])
    socket.cut()
  })
  let onB: EventSocket | undefined
  try {
    const created = await onA.waitFor('session.created', (e) => e.type === 'session.created')
    const conversationId = (created.event['session'] as { conversation_id?: string } | undefined)?.conversation_id
    if (conversationId === undefined || conversationId === '') throw new Error('session.created without a conversation_id')
    onA.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Tell me the long one.' }] } })
    onA.send({ type: 'response.create' })
    await onA.waitFor(`delta ${CUT_AFTER_DELTAS}`, () => cursor !== undefined).catch((err: unknown) => {
      if (cursor === undefined) throw err
    })
    if (cursor === undefined) throw new Error('no cursor')
    const before = onA.events
    if (offlineMs > 0) await sleep(offlineMs)

    const url = `${urlB}&conversation_id=${encodeURIComponent(conversationId)}&resume_after=${encodeURIComponent(cursor)}`
    const start = performance.now()
    onB = new EventSocket(url)
    const sessionCreated = await onB.waitFor('session.created', (e) => e.type === 'session.created' || e.type === 'error')
    if (sessionCreated.event.type === 'error') throw new Error(`error before session.created: ${JSON.stringify(sessionCreated.event['error'])}`)
    const first = await onB.waitFor('a replayed response.* event', (e) => e.type.startsWith('response.') || e.type === 'error', sessionCreated.index + 1)
    if (first.event.type === 'error') throw new Error(`error event: ${JSON.stringify(first.event['error'])}`)
    const done = await onB.waitFor('response.done', (e) => e.type === 'response.done' || e.type === 'error', first.index)
    if (done.event.type === 'error') throw new Error(`error event: ${JSON.stringify(done.event['error'])}`)
    const after = onB.events.slice(sessionCreated.index + 1, done.index + 1)
    const errors = onB.events.filter((s) => s.event.type === 'error')
    if (errors.length > 0) throw new Error(`error event: ${JSON.stringify(errors[0]?.event['error'])}`)

    const ids = [...before, ...after].filter(isLogEvent).map((s) => String(s.event['event_id']))
    const textBefore = textOf(before)
    const textAfter = textOf(after)
    return {
      sessionCreatedMs: sessionCreated.at - start,
      firstReplayMs: first.at - start,
      firstReplayType: first.event.type,
      eventsBeforeReplay: first.index - sessionCreated.index - 1,
      deltasBefore: before.filter((s) => s.event.type === 'response.output_text.delta').length,
      deltasAfter: after.filter((s) => s.event.type === 'response.output_text.delta').length,
      duplicateIds: ids.length - new Set(ids).size,
      textMatches: textBefore + textAfter === RESUME_TEXT,
      status: String((done.event['response'] as { status?: string } | undefined)?.status)
    }
  } finally {
    onA.close()
    onB?.close()
  }
}

interface Variant {
  /** Time between the cut on A and `new WebSocket()` to B. */
  offlineMs: number
  trials: Trial[]
  errors: number
  errorSamples: string[]
}

interface Part2 {
  variants: Variant[]
  truncated: boolean
}

async function partTwo (options: Options, redis: RedisServer): Promise<Part2> {
  const sim = await startSimulator({ defaults: { firstTokenDelayMs: options.firstTokenDelayMs, tokenDelayMs: options.resumeTokenDelayMs, text: RESUME_TEXT } })
  const gateways: Gateway[] = []
  try {
    // Two instances on one Redis; B never generates, it only replays and relays A's reply.
    for (let i = 0; i < 2; i++) gateways.push(await startGateway(sim, { REDIS_URL: redis.url }, 1))
    const [a, b] = gateways
    if (a === undefined || b === undefined) throw new Error('two instances expected')
    const variants: Variant[] = (options.offlineMs > 0 ? [0, options.offlineMs] : [0])
      .map((offlineMs) => ({ offlineMs, trials: [], errors: 0, errorSamples: [] }))
    let truncated = false
    const deadline = performance.now() + options.durationS * 1000
    // Trial 0 warms both instances (first subscriptions, JIT) and is discarded. The variants
    // take turns, in alternating order, so machine noise lands on both alike.
    for (let trial = 0; trial <= options.trials; trial++) {
      if (trial > 0 && performance.now() > deadline) {
        truncated = true
        break
      }
      for (const variant of trial % 2 === 0 ? variants : [...variants].reverse()) {
        try {
          const outcome = await runTrial(a.url, b.url, variant.offlineMs)
          if (trial > 0) variant.trials.push(outcome)
        } catch (err) {
          if (trial === 0) continue
          variant.errors++
          if (variant.errorSamples.length < 5) variant.errorSamples.push(err instanceof Error ? err.message : String(err))
        }
      }
    }
    return { variants, truncated }
  } finally {
    await Promise.allSettled(gateways.map(async (g) => g.app.close()))
    await sim.close()
  }
}

/** The JSON (and table) figures of one reconnect variant. */
function variantReport (variant: Variant) {
  const trials = variant.trials
  const firstReplayedEventTypes: Record<string, number> = {}
  for (const t of trials) firstReplayedEventTypes[t.firstReplayType] = (firstReplayedEventTypes[t.firstReplayType] ?? 0) + 1
  return {
    offlineMs: variant.offlineMs,
    trialsOk: trials.length,
    errors: variant.errors,
    ...(variant.errorSamples.length > 0 ? { errorSamples: variant.errorSamples } : {}),
    sessionCreatedMs: summarize(trials.map((t) => t.sessionCreatedMs)),
    firstReplayedEventMs: summarize(trials.map((t) => t.firstReplayMs)),
    firstReplayedEventTypes,
    eventsBetweenSessionCreatedAndReplay: trials.reduce((sum, t) => sum + t.eventsBeforeReplay, 0),
    deltasBeforeCut: summarize(trials.map((t) => t.deltasBefore)),
    duplicateEventIds: trials.reduce((sum, t) => sum + t.duplicateIds, 0),
    textMismatches: trials.filter((t) => !t.textMatches).length,
    notCompleted: trials.filter((t) => t.status !== 'completed').length
  }
}

type VariantReport = ReturnType<typeof variantReport>

// ---------------------------------------------------------------------------------------------
// Run

async function main (): Promise<number> {
  const options = parseOptions(process.argv.slice(2))
  const startedAt = new Date()
  const runStart = performance.now()
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: still running ${(2 * options.durationS * 1000 + WATCHDOG_GRACE_MS) / 1000}s after start; giving up\n`)
    process.exit(2)
  }, 2 * options.durationS * 1000 + WATCHDOG_GRACE_MS)
  watchdog.unref()

  const redis = await startRedis()
  let probe: RedisProbe | undefined
  try {
    probe = new RedisProbe(redis.url)
    const redisVersion = await probe.version()
    const rssBefore = process.memoryUsage().rss
    const one = await partOne(options, redis, probe)
    const two = await partTwo(options, redis)
    const rssAfter = process.memoryUsage().rss

    const r = one.recorders.redis
    const m = one.recorders.memory
    const ttft = { redis: summarize(r.ttftMs), memory: summarize(m.ttftMs) }
    const gaps = { redis: summarize(r.interTokenMs), memory: summarize(m.interTokenMs) }
    const reconnect = two.variants.map(variantReport)

    const result = {
      schema: 'tokenwire-bench-redis/1',
      timestamp: startedAt.toISOString(),
      node: process.version,
      redis: redisVersion,
      platform: `${process.platform}/${process.arch}`,
      cpus: cpus().length,
      availableParallelism: availableParallelism(),
      params: {
        sessions: options.sessions,
        turns: options.turns,
        trials: options.trials,
        durationCapS: options.durationS,
        tokenDelayMs: options.tokenDelayMs,
        firstTokenDelayMs: options.firstTokenDelayMs,
        resumeTokenDelayMs: options.resumeTokenDelayMs,
        deltasPerReply: tokenize(REPLY_TEXT).length,
        deltasPerResumeReply: tokenize(RESUME_TEXT).length,
        cutAfterDeltas: CUT_AFTER_DELTAS,
        model: MODEL
      },
      commands: {
        note: 'Redis counts commands run inside Lua scripts in total_commands_processed and commandstats, besides the EVALSHA itself',
        ...one.commands
      },
      rounds: { planned: options.turns, completed: one.roundsDone, truncated: one.truncated },
      redisGateway: { ...r.report(), connectMs: one.connectMs.redis },
      memoryGateway: { ...m.report(), connectMs: one.connectMs.memory },
      redisVsMemory: {
        ttftP50Ms: finite(ttft.redis.p50 - ttft.memory.p50),
        ttftP95Ms: finite(ttft.redis.p95 - ttft.memory.p95),
        ttftP99Ms: finite(ttft.redis.p99 - ttft.memory.p99),
        ttftP50Ratio: finite(ttft.redis.p50 / ttft.memory.p50),
        ttftP95Ratio: finite(ttft.redis.p95 / ttft.memory.p95),
        ttftP99Ratio: finite(ttft.redis.p99 / ttft.memory.p99),
        interTokenP50Ms: finite(gaps.redis.p50 - gaps.memory.p50),
        interTokenP99Ms: finite(gaps.redis.p99 - gaps.memory.p99)
      },
      reconnect: {
        path: 'instance A (socket terminated right after the 5th delta) -> instance B on the same Redis, ?conversation_id=…&resume_after=<event_id of the 5th delta>',
        truncated: two.truncated,
        variants: reconnect
      },
      process: { rssBeforeBytes: rssBefore, rssAfterBytes: rssAfter },
      durationS: round3((performance.now() - runStart) / 1000)
    }
    writeJson(options.out, result)

    const gw = (mode: Mode) => ({ turnsOk: one.recorders[mode].turnsOk, errors: one.recorders[mode].errors, connectP50: one.connectMs[mode].p50 })
    printTable(options, result, { ttft, gaps, gw: { redis: gw('redis'), memory: gw('memory') } })
    for (const [mode, recorder] of Object.entries(one.recorders)) {
      for (const message of recorder.errorSamples) process.stderr.write(`bench: ${mode} gateway error: ${message}\n`)
    }
    for (const variant of reconnect) {
      for (const message of variant.errorSamples ?? []) process.stderr.write(`bench: reconnect trial (offline ${variant.offlineMs} ms) error: ${message}\n`)
    }
    process.stdout.write(`wrote ${options.out}\n`)

    const failed = r.errors > 0 || m.errors > 0 || r.turnsOk === 0 || m.turnsOk === 0 ||
      reconnect.some((v) => v.errors > 0 || v.trialsOk === 0 || v.duplicateEventIds > 0 || v.textMismatches > 0 || v.notCompleted > 0)
    return failed ? 1 : 0
  } finally {
    await probe?.close()
    await redis.stop()
  }
}

function printTable (
  options: Options,
  result: {
    cpus: number,
    redis: string,
    params: { deltasPerReply: number, deltasPerResumeReply: number },
    commands: CommandsReport,
    rounds: { completed: number, truncated: boolean },
    reconnect: { truncated: boolean, variants: VariantReport[] },
    process: { rssBeforeBytes: number, rssAfterBytes: number },
    durationS: number
  },
  s: { ttft: Record<Mode, Summary>, gaps: Record<Mode, Summary>, gw: Record<Mode, { turnsOk: number, errors: number, connectP50: number }> }
): void {
  const ms = (v: number): string => Number.isFinite(v) ? v.toFixed(2) : '-'
  const num = (v: number | null, digits = 2): string => v === null ? '-' : v.toFixed(digits)
  const diff = (v: number): string => Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(2)}` : '-'
  const ratio = (a: number, b: number): string => Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : '-'
  const c = result.commands
  const planned = options.sessions * options.turns
  const latency: Array<[string, number, number]> = [
    ['TTFT p50', s.ttft.memory.p50, s.ttft.redis.p50],
    ['TTFT p95', s.ttft.memory.p95, s.ttft.redis.p95],
    ['TTFT p99', s.ttft.memory.p99, s.ttft.redis.p99],
    ['inter-token p50', s.gaps.memory.p50, s.gaps.redis.p50],
    ['inter-token p99', s.gaps.memory.p99, s.gaps.redis.p99],
    ['ws connect p50', s.gw.memory.connectP50, s.gw.redis.connectP50]
  ]
  const rc = result.reconnect
  const lines = [
    `Tokenwire Redis bench: node ${process.version}, redis ${result.redis}, ${result.cpus} cpus`,
    '',
    `1. Redis commands per relayed token: ${options.sessions} sessions x ${options.turns} turns, ${result.params.deltasPerReply} deltas/reply, ` +
      `first token ${options.firstTokenDelayMs} ms, token ${options.tokenDelayMs} ms`,
    `   window: ${c.turns} turns, ${c.textDeltas} text deltas received; ${c.probeInfoCallsSubtracted} INFO calls of the probe subtracted`,
    `   all commands     ${c.totalCommands} = ${num(c.perToken, 3)} per token, ${num(c.perTurn, 1)} per turn (Redis counts commands run inside scripts too)`,
    `   script calls     ${c.scriptCalls} = ${num(c.scriptCallsPerToken, 3)} per token (EVALSHA/EVAL: client round trips), ${num(c.scriptUsecPerToken, 1)} us of Redis time per token`,
    '',
    `   ${'command'.padEnd(14)}${'calls'.padStart(9)}${'per turn'.padStart(11)}${'per token'.padStart(11)}`,
    ...c.breakdown.map((b) => `   ${b.command.padEnd(14)}${String(b.calls).padStart(9)}${num(b.perTurn, 1).padStart(11)}${num(b.perToken, 3).padStart(11)}`),
    '',
    `   ${'(ms)'.padEnd(18)}${'memory'.padStart(10)}${'redis'.padStart(10)}${'added'.padStart(10)}${'ratio'.padStart(9)}`,
    ...latency.map(([label, mem, red]) => `   ${label.padEnd(18)}${ms(mem).padStart(10)}${ms(red).padStart(10)}${diff(red - mem).padStart(10)}${ratio(red, mem).padStart(9)}`),
    `   turns ok         memory ${s.gw.memory.turnsOk}/${planned} (${s.gw.memory.errors} errors), redis ${s.gw.redis.turnsOk}/${planned} (${s.gw.redis.errors} errors)` +
      `, rounds ${result.rounds.completed}/${options.turns}${result.rounds.truncated ? ' (truncated by --duration-s)' : ''}`,
    '',
    `2. Reconnect to another instance with resume_after: ${options.trials} trials per variant, ${result.params.deltasPerResumeReply}-delta reply, ` +
      `token ${options.resumeTokenDelayMs} ms, socket cut after delta ${CUT_AFTER_DELTAS}${rc.truncated ? ' (truncated by --duration-s)' : ''}`,
    `   ${'(ms, from new WebSocket)'.padEnd(40)}${'p50'.padStart(9)}${'p95'.padStart(9)}${'max'.padStart(9)}`,
    ...rc.variants.flatMap((v) => {
      const when = v.offlineMs === 0 ? 'at once' : `${v.offlineMs} ms later`
      return [
        `   ${`reconnect ${when} -> session.created`.padEnd(40)}${ms(v.sessionCreatedMs.p50).padStart(9)}${ms(v.sessionCreatedMs.p95).padStart(9)}${ms(v.sessionCreatedMs.max).padStart(9)}`,
        `   ${`reconnect ${when} -> first replayed`.padEnd(40)}${ms(v.firstReplayedEventMs.p50).padStart(9)}${ms(v.firstReplayedEventMs.p95).padStart(9)}${ms(v.firstReplayedEventMs.max).padStart(9)}`
      ]
    }),
    ...rc.variants.map((v) => `   ${v.offlineMs === 0 ? 'at once' : `${v.offlineMs} ms later`}: trials ok ${v.trialsOk}/${options.trials}, errors ${v.errors}, duplicate event_ids ${v.duplicateEventIds}, ` +
      `text mismatches ${v.textMismatches}, not completed ${v.notCompleted}`),
    '',
    `process RSS      ${mb(result.process.rssBeforeBytes)} before, ${mb(result.process.rssAfterBytes)} after`,
    `wall time        ${result.durationS.toFixed(1)} s`
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
}

main().then((code) => process.exit(code), (err: unknown) => {
  if (err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
    process.stderr.write(`bench: ${err.message}\n${USAGE}\n`)
    process.exit(64)
  }
  process.stderr.write(`bench: failed: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exit(1)
})
