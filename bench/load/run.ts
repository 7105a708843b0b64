/**
 * Load benchmark, all on loopback, in one process: the direct `openai` SDK against a simulator
 * (the baseline) versus the same turns through the gateway (buildApp + listen, in front of a
 * second simulator with the same pacing) spoken to by plain `ws` Realtime clients.
 *
 * Rounds alternate (warm-up, then B G, G B, B G, …) so machine noise hits both sides alike;
 * the figures that matter are the gateway's numbers relative to the in-run baseline.
 *
 *   npx tsx bench/load/run.ts [--sessions 20] [--turns 5] [--duration-s 60]
 *     [--token-delay-ms 5] [--first-token-delay-ms 20] [--out bench/results/load-latest.json]
 */
import type { AddressInfo } from 'node:net'
import { availableParallelism, cpus } from 'node:os'
import { resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import OpenAI from 'openai'
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import {
  GatewaySession, MODEL, Recorder, TURN_TIMEOUT_MS, UsageError, finite, intFlag, mb, round3, summarize, userText, writeJson,
  type BenchSession, type Summary, type TurnSample
} from './common.js'

/** Every reply, on both paths: 30 content deltas from the simulator's tokenizer. */
const REPLY_TEXT = 'Tokenwire benchmark reply: one fixed sentence, streamed in small deltas, so that the direct baseline and the gateway carry exactly the same tokens on every turn.'
/** Past the duration cap, the run is abandoned after this much more time, whatever is in flight. */
const WATCHDOG_GRACE_MS = 75_000
const DEFAULT_OUT = fileURLToPath(new URL('../results/load-latest.json', import.meta.url))

// ---------------------------------------------------------------------------------------------
// CLI

interface Options {
  sessions: number
  turns: number
  durationS: number
  tokenDelayMs: number
  firstTokenDelayMs: number
  out: string
}

const USAGE = `usage: npx tsx bench/load/run.ts [options]
  --sessions N              concurrent sessions per round (default 20, 1..1000)
  --turns N                 measured turns per session (default 5, 1..1000)
  --duration-s N            cap on the measured rounds, in seconds (default 60)
  --token-delay-ms N        simulator pause between chunks (default 5)
  --first-token-delay-ms N  simulator pause before the first chunk (default 20)
  --out PATH                JSON results (default bench/results/load-latest.json)`

function parseOptions (argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      sessions: { type: 'string', default: '20' },
      turns: { type: 'string', default: '5' },
      'duration-s': { type: 'string', default: '60' },
      'token-delay-ms': { type: 'string', default: '5' },
      'first-token-delay-ms': { type: 'string', default: '20' },
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
    durationS: intFlag('duration-s', values['duration-s'], 1, 3600),
    tokenDelayMs: intFlag('token-delay-ms', values['token-delay-ms'], 0, 10_000),
    firstTokenDelayMs: intFlag('first-token-delay-ms', values['first-token-delay-ms'], 0, 60_000),
    out: values.out === undefined ? DEFAULT_OUT : resolve(process.cwd(), values.out)
  }
}

// ---------------------------------------------------------------------------------------------
// Clients

/** A conversation driven directly with the SDK, carrying its own history like the gateway does. */
class BaselineSession implements BenchSession {
  readonly #messages: ChatCompletionMessageParam[] = []

  constructor (private readonly index: number, private readonly client: OpenAI) {}

  async turn (turn: number): Promise<TurnSample> {
    this.#messages.push({ role: 'user', content: userText(this.index, turn) })
    const start = performance.now()
    const stream = await this.client.chat.completions.create(
      { model: MODEL, messages: this.#messages, stream: true, stream_options: { include_usage: true } },
      { signal: AbortSignal.timeout(TURN_TIMEOUT_MS) }
    )
    let first: number | undefined
    let last = 0
    const gapsMs: number[] = []
    let text = ''
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta.content
      if (typeof content !== 'string' || content === '') continue
      const now = performance.now()
      if (first === undefined) first = now
      else gapsMs.push(now - last)
      last = now
      text += content
    }
    if (first === undefined) throw new Error('baseline: stream ended without a content delta')
    this.#messages.push({ role: 'assistant', content: text })
    return { ttftMs: first - start, gapsMs, deltas: gapsMs.length + 1 }
  }
}

// ---------------------------------------------------------------------------------------------
// Run

type Mode = 'baseline' | 'gateway'

interface Phase {
  mode: Mode
  results: Array<PromiseSettledResult<TurnSample>>
  ms: number
  messages: number
}

async function runPhase (mode: Mode, sessions: readonly BenchSession[], turn: number, gateway: readonly GatewaySession[]): Promise<Phase> {
  const messagesBefore = mode === 'gateway' ? countMessages(gateway) : 0
  const start = performance.now()
  const results = await Promise.allSettled(sessions.map((session) => session.turn(turn)))
  const ms = performance.now() - start
  const messages = mode === 'gateway' ? countMessages(gateway) - messagesBefore : 0
  return { mode, results, ms, messages }
}

function countMessages (sessions: readonly GatewaySession[]): number {
  return sessions.reduce((sum, s) => sum + s.sent + s.received, 0)
}

async function main (): Promise<number> {
  const options = parseOptions(process.argv.slice(2))
  const startedAt = new Date()
  const runStart = performance.now()
  const rssBefore = process.memoryUsage().rss
  let rssPeak = rssBefore
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss) }, 100)
  sampler.unref()
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: still running ${(options.durationS * 1000 + WATCHDOG_GRACE_MS) / 1000}s after start; giving up\n`)
    process.exit(2)
  }, options.durationS * 1000 + WATCHDOG_GRACE_MS)
  watchdog.unref()

  const pacing = { firstTokenDelayMs: options.firstTokenDelayMs, tokenDelayMs: options.tokenDelayMs, text: REPLY_TEXT }
  const baselineSim: Simulator = await startSimulator({ defaults: pacing })
  const upstreamSim: Simulator = await startSimulator({ defaults: pacing })
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    OPENAI_BASE_URL: upstreamSim.baseURL,
    OPENAI_API_KEY: 'bench-not-a-real-key',
    HEARTBEAT_INTERVAL_MS: '0',
    MAX_ITEMS_PER_CONVERSATION: String(Math.max(1000, 2 * (options.turns + 1) + 10))
  })
  const app = await buildApp({ config })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const url = `ws://127.0.0.1:${port}/v1/realtime?model=${MODEL}`

  const client = new OpenAI({ baseURL: baselineSim.baseURL, apiKey: 'bench-not-a-real-key', maxRetries: 0, timeout: TURN_TIMEOUT_MS })
  const baseline = Array.from({ length: options.sessions }, (_, i) => new BaselineSession(i, client))
  const opened = await Promise.all(Array.from({ length: options.sessions }, (_, i) => GatewaySession.open(i, url)))
  const gateway = opened.map((o) => o.session)
  const connectMs = summarize(opened.map((o) => o.connectMs))

  const recorders: Record<Mode, Recorder> = { baseline: new Recorder(), gateway: new Recorder() }
  let gatewayMessages = 0
  const deadline = performance.now() + options.durationS * 1000
  let roundsDone = 0
  let truncated = false
  const sessionsOf = (mode: Mode): readonly BenchSession[] => mode === 'baseline' ? baseline : gateway

  try {
    // Round 0 warms both paths (connection pools, JIT) and is discarded. Then B G, G B, B G, …
    for (let round = 0; round <= options.turns; round++) {
      if (round > 0 && performance.now() > deadline) {
        truncated = true
        break
      }
      const order: Mode[] = round % 2 === 0 ? ['gateway', 'baseline'] : ['baseline', 'gateway']
      for (const mode of order) {
        const phase = await runPhase(mode, sessionsOf(mode), round, gateway)
        if (round === 0) continue
        recorders[mode].record(phase.results)
        recorders[mode].phaseMs += phase.ms
        gatewayMessages += phase.messages
      }
      if (round > 0) roundsDone++
    }
  } finally {
    clearInterval(sampler)
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
  }
  const rssAfter = process.memoryUsage().rss

  await Promise.allSettled(gateway.map((s) => s.close()))
  await Promise.allSettled([app.close(), baselineSim.close(), upstreamSim.close()])

  const base = recorders.baseline
  const gw = recorders.gateway
  const b = summarize(base.ttftMs)
  const g = summarize(gw.ttftMs)
  const bGap = summarize(base.interTokenMs)
  const gGap = summarize(gw.interTokenMs)
  const messagesPerSecond = gw.phaseMs > 0 ? gatewayMessages / (gw.phaseMs / 1000) : Number.NaN

  const result = {
    schema: 'tokenwire-bench/1',
    timestamp: startedAt.toISOString(),
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
    cpus: cpus().length,
    availableParallelism: availableParallelism(),
    params: {
      sessions: options.sessions,
      turns: options.turns,
      durationCapS: options.durationS,
      tokenDelayMs: options.tokenDelayMs,
      firstTokenDelayMs: options.firstTokenDelayMs,
      deltasPerReply: 30,
      model: MODEL,
      order: 'warm-up round (discarded), then alternating B-G / G-B rounds'
    },
    rounds: { planned: options.turns, completed: roundsDone, truncated },
    baseline: base.report(),
    gateway: { ...gw.report(), connectMs, messages: gatewayMessages, messagesPerSecond: finite(messagesPerSecond) },
    added: {
      ttftP50Ms: finite(g.p50 - b.p50),
      ttftP99Ms: finite(g.p99 - b.p99),
      ttftP50Ratio: finite(g.p50 / b.p50),
      ttftP99Ratio: finite(g.p99 / b.p99),
      interTokenP50Ms: finite(gGap.p50 - bGap.p50),
      interTokenP99Ms: finite(gGap.p99 - bGap.p99)
    },
    process: { rssBeforeBytes: rssBefore, rssAfterBytes: rssAfter, rssPeakBytes: rssPeak },
    durationS: round3((performance.now() - runStart) / 1000)
  }

  writeJson(options.out, result)

  printTable(options, result.cpus, { b, g, bGap, gGap }, {
    baseOk: base.turnsOk,
    baseErrors: base.errors,
    gwOk: gw.turnsOk,
    gwErrors: gw.errors,
    planned: options.sessions * options.turns,
    roundsDone,
    truncated,
    messagesPerSecond,
    connectP50: connectMs.p50,
    rssBefore,
    rssAfter,
    rssPeak,
    durationS: result.durationS
  })
  for (const [mode, recorder] of Object.entries(recorders)) {
    for (const message of recorder.errorSamples) process.stderr.write(`bench: ${mode} error: ${message}\n`)
  }
  process.stdout.write(`wrote ${options.out}\n`)

  const failed = base.errors > 0 || gw.errors > 0 || base.turnsOk === 0 || gw.turnsOk === 0
  return failed ? 1 : 0
}

function printTable (
  options: Options,
  cpuCount: number,
  s: { b: Summary, g: Summary, bGap: Summary, gGap: Summary },
  r: {
    baseOk: number,
    baseErrors: number,
    gwOk: number,
    gwErrors: number,
    planned: number,
    roundsDone: number,
    truncated: boolean,
    messagesPerSecond: number,
    connectP50: number,
    rssBefore: number,
    rssAfter: number,
    rssPeak: number,
    durationS: number
  }
): void {
  const ms = (v: number): string => Number.isFinite(v) ? v.toFixed(2) : '-'
  const diff = (v: number): string => Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(2)}` : '-'
  const ratio = (g: number, b: number): string => Number.isFinite(g / b) ? `${(g / b).toFixed(2)}x` : '-'
  const rows: Array<[string, number, number]> = [
    ['TTFT p50', s.b.p50, s.g.p50],
    ['TTFT p95', s.b.p95, s.g.p95],
    ['TTFT p99', s.b.p99, s.g.p99],
    ['inter-token p50', s.bGap.p50, s.gGap.p50],
    ['inter-token p99', s.bGap.p99, s.gGap.p99]
  ]
  const lines = [
    `Tokenwire load bench: node ${process.version}, ${cpuCount} cpus, ${options.sessions} sessions x ${options.turns} turns, ` +
      `first token ${options.firstTokenDelayMs} ms, token ${options.tokenDelayMs} ms`,
    '',
    `${'(ms)'.padEnd(18)}${'baseline'.padStart(10)}${'gateway'.padStart(10)}${'added'.padStart(10)}${'ratio'.padStart(9)}`,
    ...rows.map(([label, b, g]) => `${label.padEnd(18)}${ms(b).padStart(10)}${ms(g).padStart(10)}${diff(g - b).padStart(10)}${ratio(g, b).padStart(9)}`),
    '',
    `turns ok         baseline ${r.baseOk}/${r.planned} (${r.baseErrors} errors), gateway ${r.gwOk}/${r.planned} (${r.gwErrors} errors)` +
      `, rounds ${r.roundsDone}/${options.turns}${r.truncated ? ' (truncated by --duration-s)' : ''}`,
    `gateway msgs/s   ${Number.isFinite(r.messagesPerSecond) ? r.messagesPerSecond.toFixed(0) : '-'} (client->gateway + gateway->client, during gateway rounds)`,
    `ws connect p50   ${ms(r.connectP50)} ms`,
    `process RSS      ${mb(r.rssBefore)} before, ${mb(r.rssAfter)} after, ${mb(r.rssPeak)} peak`,
    `wall time        ${r.durationS.toFixed(1)} s`
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
