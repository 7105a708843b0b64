/**
 * `npm run bench`: how much Tokenwire adds to a token stream, at scale, against the direct
 * `openai` SDK stream from the same simulator (the floor), a bare relay, and a peer gateway
 * measured in the same run. Every piece runs in its own process on loopback: the upstream
 * simulators, redis-server, the gateways (memory and Redis store), the bare relay, the peer
 * and the load generator; this harness only orchestrates, reads /proc for CPU and RSS and
 * `INFO commandstats` for Redis work, and writes the results:
 *
 *   bench/results/latest.json   every figure, machine-readable
 *   bench/results/latest.md     the tables (also printed to stdout at the end)
 *   bench/results/*.svg         the charts
 *   docs/bench/                 the table, the JSON and the charts README shows (with --publish)
 *
 * Progress goes to stderr. Bounded in time (a watchdog) and count; stops everything it started.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { tokenize } from '../src/simulator/scenario.js'
import { summariseProfile } from './lib/cpu-profile.js'
import { USAGE, UsageError, parseOptions, type Options } from './lib/options.js'
import { startPeer, type Peer } from './lib/peer.js'
import { ROOT, openFilesLimit } from './lib/procs.js'
import type { Expect } from './lib/protocol.js'
import { RedisProbe } from './lib/redis-probe.js'
import { judgeGoals, markdown, type Results } from './lib/report.js'
import { startBareRelay, startLoadGen, startRedisServer, startUpstream, type LoadGen } from './lib/services.js'
import { cdfPoints, lineChart } from './lib/svg.js'
import { startPair, stopPair, targetsFor, type Context, type GatewayPair, type UpstreamName } from './scenarios/context.js'
import { runMemory } from './scenarios/memory.js'
import { runConcurrency, runGap } from './scenarios/paced.js'
import { runReconnect } from './scenarios/reconnect.js'
import { runThroughput, type Cell } from './scenarios/throughput.js'
import { runTtft } from './scenarios/ttft.js'

const SENTENCES = [
  'Tokenwire relays every token of a reply to the client as soon as the upstream produces it.',
  'The conversation is kept in a log, so a client that drops can resume from any instance.',
  'This reply is a fixed text, so every path in the benchmark carries exactly the same tokens.'
]
/** The reconnect upstream's pause between tokens, in ms (a reply still streaming after the reconnect). */
const RESUME_TOKEN_MS = 10

/** A fixed reply that the simulator streams as exactly `deltas` text deltas. */
function replyOf (deltas: number): string {
  let text = ''
  for (let i = 0; tokenize(text).length < deltas; i++) text += `${i === 0 ? '' : ' '}${SENTENCES[i % SENTENCES.length] ?? ''}`
  return tokenize(text).slice(0, deltas).join('')
}

const expectOf = (text: string): Expect => ({ deltas: tokenize(text).length, text })

const startedAt = performance.now()
function log (line: string): void {
  process.stderr.write(`[${((performance.now() - startedAt) / 1000).toFixed(0).padStart(4)}s] ${line}\n`)
}

function versionOf (path: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function writeAtomic (path: string, text: string): void {
  const tmp = `${path}.tmp`
  writeFileSync(tmp, text)
  renameSync(tmp, path)
}

/** Runs one scenario; a failure is recorded and the run goes on. */
async function attempt<T> (name: string, failures: Record<string, string>, run: () => Promise<T>): Promise<T | undefined> {
  try {
    return await run()
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    failures[name] = message.split('\n').slice(0, 3).join(' ')
    log(`${name}: FAILED: ${message}`)
    return undefined
  }
}

function charts (results: Results, raw: Record<string, number[]>): Record<string, string> {
  const out: Record<string, string> = {}
  const m = results.machine
  const where = `${m.cpus} cores (${m.cpuModel}), Node ${m.node}, ${results.timestamp.slice(0, 10)}`
  if (Object.keys(raw).length > 0) {
    out['ttft.svg'] = lineChart({
      title: 'Time to first token, one turn at a time',
      subtitle: `CDF over ${results.ttft?.samplesPerTarget ?? 0} turns per target, unpaced upstream; ${where}`,
      xLabel: 'time to first token (ms, log scale)',
      yLabel: 'percent of turns at or below',
      xLog: true,
      series: Object.entries(raw).map(([name, values]) => ({ name, points: cdfPoints(values) }))
    })
  }
  const tp = results.throughput
  if (tp !== undefined) {
    const names = [...new Set(Object.values(tp.cells).flatMap((row) => Object.keys(row)))]
    const levels = tp.levels
    const cells = tp.cells
    const series = (pick: (cell: Cell) => number | null) =>
      names.map((name) => ({ name, points: levels.map((c) => { const cell = cells[String(c)]?.[name]; return [c, cell === undefined ? Number.NaN : pick(cell) ?? Number.NaN] as const }) }))
    out['throughput.svg'] = lineChart({
      title: 'Relay throughput against concurrency',
      subtitle: `unpaced upstream, ${tp.replyTokens}-token replies; ${where}`,
      xLabel: 'concurrent sockets (log scale)',
      yLabel: 'text deltas delivered per second',
      xLog: true,
      xTicks: levels,
      series: series((cell) => cell.tokensPerS)
    })
    out['latency.svg'] = lineChart({
      title: 'Time to first token p99 against concurrency',
      subtitle: `same cells as the throughput chart; ${where}`,
      xLabel: 'concurrent sockets (log scale)',
      yLabel: 'TTFT p99 (ms, log scale)',
      xLog: true,
      yLog: true,
      xTicks: levels,
      series: series((cell) => cell.ttftMs.p99)
    })
  }
  const cc = results.concurrency
  if (cc !== undefined) {
    out['streams.svg'] = lineChart({
      title: `Inter-token gap p99 with N concurrent ${cc.tokensPerSecond} tokens/s streams`,
      subtitle: `pacing ${(1000 / cc.tokensPerSecond).toFixed(0)} ms, ${cc.replyTokens}-token replies; ${where}`,
      xLabel: 'concurrent streams (log scale)',
      yLabel: 'inter-token gap p99 (ms)',
      xLog: true,
      xTicks: cc.levels,
      series: Object.entries(cc.targets).map(([name, levels]) => ({ name, points: levels.map((l) => [l.streams, l.gapMs.p99] as const) }))
    })
  }
  return out
}

async function main (options: Options): Promise<number> {
  const loadBefore = Math.round((loadavg()[0] ?? 0) * 10) / 10
  const watchdog = setTimeout(() => {
    log(`still running after --max-seconds ${options.maxSeconds}; giving up (every child is killed)`)
    process.exit(2)
  }, options.maxSeconds * 1000)
  watchdog.unref()
  process.once('SIGINT', () => process.exit(130))
  process.once('SIGTERM', () => process.exit(143))

  mkdirSync(options.outDir, { recursive: true })
  const profileDir = options.profile ? join(options.outDir, 'profiles') : undefined
  if (profileDir !== undefined) {
    rmSync(profileDir, { recursive: true, force: true })
    mkdirSync(profileDir, { recursive: true })
  }
  const pacedMs = 1000 / options.tokensPerSecond
  const texts: Record<UpstreamName, string> = { fast: replyOf(100), paced: replyOf(100), resume: replyOf(40) }
  const failures: Record<string, string> = {}
  const raw: Record<string, number[]> = {}

  log(`starting: upstream simulators, redis-server, bare relay, load generator${options.peer ? ', peer' : ''}`)
  const loadgen: LoadGen = startLoadGen((line) => log(line))
  let probe: RedisProbe | undefined
  let pair: GatewayPair | undefined
  const stops: Array<() => Promise<void>> = [async () => await loadgen.stop()]
  try {
    const [upstream, redisProc, bare] = await Promise.all([
      startUpstream([
        { name: 'fast', firstTokenDelayMs: 0, tokenDelayMs: 0, text: texts.fast },
        { name: 'paced', firstTokenDelayMs: 0, tokenDelayMs: pacedMs, text: texts.paced },
        { name: 'resume', firstTokenDelayMs: 0, tokenDelayMs: RESUME_TOKEN_MS, text: texts.resume }
      ]),
      startRedisServer(),
      startBareRelay()
    ])
    stops.push(async () => await upstream.proc.stop(), async () => await redisProc.proc.stop(), async () => await bare.proc.stop())
    probe = new RedisProbe(redisProc.url)
    const redisVersion = await probe.version()
    let peer: Peer | undefined
    let peerReason: string | undefined
    if (!options.peer) {
      peerReason = 'disabled with --no-peer'
    } else if (options.scenarios.has('ttft') || options.scenarios.has('throughput')) {
      const outcome = await startPeer(upstream.urls['fast'] ?? '', log)
      if (outcome.ok) {
        peer = outcome.peer
        stops.push(async () => await outcome.peer.proc.stop())
        log(`peer: @portkey-ai/gateway ${peer.version} (@hono/node-server ${peer.honoNodeServer}) ready`)
      } else {
        peerReason = outcome.reason
        log(`peer: unavailable, the run goes on without it: ${outcome.reason}`)
      }
    } else {
      peerReason = 'not needed by the selected scenarios'
    }
    const ctx: Context = {
      options,
      loadgen,
      upstream: { proc: upstream.proc, urls: upstream.urls as Record<UpstreamName, string> },
      redis: redisProc,
      probe,
      bare,
      peer,
      expect: { fast: expectOf(texts.fast), paced: expectOf(texts.paced), resume: expectOf(texts.resume) },
      profileDir,
      log
    }
    const env = options.batchLingerMs === undefined ? {} : { BATCH_LINGER_MS: String(options.batchLingerMs) }
    const results: Results = {
      schema: 'tokenwire-bench/2',
      timestamp: new Date().toISOString(),
      command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
      durationS: 0,
      machine: {
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        cpus: cpus().length,
        memoryGB: Math.round(totalmem() / 1024 ** 3),
        kernel: release(),
        node: process.version,
        redis: redisVersion,
        openFilesLimit: Number.isFinite(openFilesLimit()) ? openFilesLimit() : null,
        loadAverage: { start: loadBefore, end: 0 }
      },
      versions: {
        tokenwire: versionOf('package.json'),
        openai: versionOf('node_modules/openai/package.json'),
        peer: peer === undefined ? null : { name: '@portkey-ai/gateway', version: peer.version, honoNodeServer: peer.honoNodeServer }
      },
      peer: peer === undefined ? { available: false, ...(peerReason === undefined ? {} : { reason: peerReason }) } : { available: true },
      settings: {
        tokensPerSecond: options.tokensPerSecond,
        batchLingerMs: options.batchLingerMs ?? 'default',
        profile: options.profile,
        replyTokens: { fast: ctx.expect.fast.deltas, paced: ctx.expect.paced.deltas, resume: ctx.expect.resume.deltas }
      },
      failures,
      goals: []
    }

    const s = options.scenarios
    if (s.has('ttft') || s.has('throughput')) {
      pair = await attempt('gateways (unpaced upstream)', failures, async () => await startPair(ctx, 'fast', 'fast', env))
      if (pair !== undefined) {
        const targets = targetsFor(ctx, 'fast', pair, true)
        if (s.has('ttft')) {
          const ttft = await attempt('ttft', failures, async () => await runTtft(ctx, targets))
          if (ttft !== undefined) {
            results.ttft = ttft.report
            Object.assign(raw, ttft.raw)
            const g = ttft.report.vsDirect['gateway-redis']
            log(`ttft: gateway-redis adds ${g?.p50Ms ?? '?'} ms p50, ${g?.p99Ms ?? '?'} ms p99 over direct`)
          }
        }
        if (s.has('throughput')) results.throughput = await attempt('throughput', failures, async () => await runThroughput(ctx, targets))
      }
      await stopPair(pair)
      pair = undefined
    }
    if (s.has('gap') || s.has('concurrency')) {
      pair = await attempt('gateways (paced upstream)', failures, async () => await startPair(ctx, 'paced', 'paced', env))
      if (pair !== undefined) {
        const targets = targetsFor(ctx, 'paced', pair, false)
        if (s.has('gap')) results.gap = await attempt('gap', failures, async () => await runGap(ctx, targets))
        if (s.has('concurrency')) {
          const chosen = targets.filter((t) => ['direct', 'gateway-memory', 'gateway-redis'].includes(t.spec.name) || (options.scenarios.size === 1 && t.spec.name === 'bare-relay'))
          results.concurrency = await attempt('concurrency', failures, async () => await runConcurrency(ctx, chosen))
        }
      }
      await stopPair(pair)
      pair = undefined
    }
    if (s.has('memory')) results.memory = await attempt('memory', failures, async () => await runMemory(ctx))
    if (s.has('reconnect')) results.reconnect = await attempt('reconnect', failures, async () => await runReconnect(ctx, RESUME_TOKEN_MS))

    if (profileDir !== undefined && existsSync(profileDir)) {
      results.profiles = {}
      for (const file of readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile')).sort()) {
        results.profiles[file.replace(/\.cpuprofile$/, '')] = summariseProfile(join(profileDir, file), 25)
      }
    }
    results.durationS = Math.round((performance.now() - startedAt) / 100) / 10
    results.machine.loadAverage.end = Math.round((loadavg()[0] ?? 0) * 10) / 10
    results.goals = judgeGoals(results)
    const md = markdown(results)
    const svgs = charts(results, raw)
    writeAtomic(join(options.outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`)
    writeAtomic(join(options.outDir, 'latest.md'), md)
    for (const [file, svg] of Object.entries(svgs)) writeAtomic(join(options.outDir, file), svg)
    if (options.publish) {
      const docs = join(ROOT, 'docs/bench')
      mkdirSync(docs, { recursive: true })
      for (const file of ['latest.md', 'latest.json']) copyFileSync(join(options.outDir, file), join(docs, file))
      for (const file of Object.keys(svgs)) copyFileSync(join(options.outDir, file), join(docs, file))
      log('published the table and charts to docs/bench/')
    }
    process.stdout.write(md)
    log(`wrote ${join(options.outDir, 'latest.json')}, latest.md and ${Object.keys(svgs).length} charts; ${results.durationS} s`)
    return Object.keys(failures).length > 0 ? 1 : 0
  } finally {
    await stopPair(pair)
    await probe?.close()
    for (const stop of stops.reverse()) await stop().catch(() => {})
  }
}

let parsed: Options | 'help'
try {
  parsed = parseOptions(process.argv.slice(2))
} catch (err) {
  const usage = err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n${usage ? `${USAGE}\n` : ''}`)
  process.exit(64)
}
if (parsed === 'help') {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
main(parsed).then((code) => process.exit(code), (err: unknown) => {
  log(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  process.exit(1)
})
