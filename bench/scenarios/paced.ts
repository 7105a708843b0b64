/**
 * Scenarios against the paced upstream (one token every 1000 / tokensPerSecond ms):
 *
 * - gap: C concurrent streams per target, a few rounds alternating the targets' order; the
 *   inter-token gaps the client sees, against the direct floor. The Redis commands the Redis
 *   gateway's rounds cost are counted over the same rounds.
 * - concurrency: N streams started over `staggerMs`, for rising N, per target; a level passes
 *   when every turn completes with every delta and no gap reached stallFactor × the pacing.
 *   A target's figure is the highest level with every level up to it passing; its ramp goes on
 *   (for the chart) until a delta is lost or its gap p99 reaches GIVE_UP_FACTOR × the pacing.
 *   The direct SDK runs the same levels as the control: where it fails too, the machine
 *   (upstream + load generator) is the limit.
 */
import type { OpenResult, TurnsResult } from '../lib/protocol.js'
import { addWindows, commandsBetween, emptyWindow, type CommandsWindow } from '../lib/redis-probe.js'
import { finite, summarize, type Summary } from '../lib/stats.js'
import { measured, type Context, type PhaseCpu, type RunTarget } from './context.js'
import { addedOver, type Added } from './ttft.js'

export interface GapTarget { gapMs: Summary, ttftMs: Summary, turnsOk: number, errors: number, errorSamples: string[], lost: number, stalls: number, cpu: PhaseCpu[] }

export interface RedisCost {
  /** Text deltas the Redis gateway's clients received in the window. */
  tokens: number
  turns: number
  allCommandsPerToken: number | null
  scriptCallsPerToken: number | null
  allCommandsPerTurn: number | null
  redisUsecPerToken: number | null
  window: CommandsWindow
}

export interface GapReport {
  tokensPerSecond: number
  streamsPerTarget: number
  rounds: number
  targets: Record<string, GapTarget>
  vsDirect: Record<string, Added>
  redis: RedisCost | undefined
}

export function redisCost (window: CommandsWindow, tokens: number, turns: number): RedisCost {
  return {
    tokens,
    turns,
    allCommandsPerToken: finite(window.allCommands / tokens),
    scriptCallsPerToken: finite(window.scriptCalls / tokens),
    allCommandsPerTurn: finite(window.allCommands / turns),
    redisUsecPerToken: finite(window.scriptUsec / tokens),
    window
  }
}

export async function runGap (ctx: Context, targets: RunTarget[]): Promise<GapReport> {
  const { concurrency, rounds } = ctx.options.gap
  const stallMs = (1000 / ctx.options.tokensPerSecond) * ctx.options.concurrency.stallFactor
  ctx.log(`gap: ${concurrency} streams x ${rounds} rounds per target at ${ctx.options.tokensPerSecond} tokens/s`)
  for (const target of targets) await ctx.loadgen.run<OpenResult>({ op: 'open', target: target.spec, count: concurrency, rotateEvery: 10 })
  const raw = new Map(targets.map((t) => [t.spec.name, { gaps: [] as number[], ttft: [] as number[], turnsOk: 0, errors: 0, errorSamples: [] as string[], lost: 0, stalls: 0, cpu: [] as PhaseCpu[] }]))
  let window = emptyWindow()
  let redisTokens = 0
  let redisTurns = 0
  try {
    // Round 0 warms every path and is discarded.
    for (let round = 0; round <= rounds; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse()
      for (const target of order) {
        const isRedis = target.spec.name === 'gateway-redis'
        const before = isRedis && round > 0 ? await ctx.probe.quietSample() : undefined
        const { value: result, cpu } = await measured(ctx, target.pid, async () => await ctx.loadgen.run<TurnsResult>({
          op: 'round', target: target.spec.name, staggerMs: 1000 / ctx.options.tokensPerSecond, recordGaps: true, stallMs, expect: ctx.expect.paced
        }))
        if (before !== undefined) {
          window = addWindows(window, commandsBetween(before, await ctx.probe.quietSample()))
          redisTokens += result.deltas
          redisTurns += result.turnsOk
        }
        if (round === 0) continue
        const into = raw.get(target.spec.name)
        if (into === undefined) continue
        into.gaps.push(...result.gapsMs)
        into.ttft.push(...result.ttftMs)
        into.turnsOk += result.turnsOk
        into.errors += result.errors
        into.errorSamples.push(...result.errorSamples.slice(0, 5 - into.errorSamples.length))
        into.lost += result.lost
        into.stalls += result.stalls
        into.cpu.push(cpu)
      }
      if (round > 0) ctx.log(`gap: round ${round}/${rounds} done`)
    }
  } finally {
    for (const target of targets) await ctx.loadgen.run({ op: 'close', target: target.spec.name })
  }
  const report: GapReport = { tokensPerSecond: ctx.options.tokensPerSecond, streamsPerTarget: concurrency, rounds, targets: {}, vsDirect: {}, redis: undefined }
  for (const [name, r] of raw) {
    report.targets[name] = { gapMs: summarize(r.gaps), ttftMs: summarize(r.ttft), turnsOk: r.turnsOk, errors: r.errors, errorSamples: r.errorSamples, lost: r.lost, stalls: r.stalls, cpu: r.cpu }
  }
  const direct = report.targets['direct']?.gapMs
  for (const [name, target] of Object.entries(report.targets)) {
    if (direct !== undefined && name !== 'direct') report.vsDirect[name] = addedOver(target.gapMs, direct)
  }
  if (redisTokens > 0) report.redis = redisCost(window, redisTokens, redisTurns)
  return report
}

/** A target's ramp stops once its gap p99 reaches this many pacing intervals (or a delta is lost). */
const GIVE_UP_FACTOR = 5

export interface LevelResult {
  streams: number
  passed: boolean
  turnsOk: number
  errors: number
  errorSamples: string[]
  lost: number
  stalls: number
  maxGapMs: number
  gapMs: Summary
  ttftMs: Summary
  connectFailures: number
  cpu: PhaseCpu
}

export interface ConcurrencyReport {
  tokensPerSecond: number
  stallMs: number
  replyTokens: number
  levels: number[]
  /** Per target: every level it ran, in order. */
  targets: Record<string, LevelResult[]>
  /** Per target: the highest level that passed (0: none). */
  maxStreams: Record<string, number>
}

export async function runConcurrency (ctx: Context, targets: RunTarget[]): Promise<ConcurrencyReport> {
  const { levels, staggerMs, stallFactor } = ctx.options.concurrency
  const stallMs = (1000 / ctx.options.tokensPerSecond) * stallFactor
  const report: ConcurrencyReport = {
    tokensPerSecond: ctx.options.tokensPerSecond, stallMs, replyTokens: ctx.expect.paced.deltas, levels, targets: {}, maxStreams: {}
  }
  const alive = new Set(targets.map((t) => t.spec.name))
  for (const target of targets) {
    report.targets[target.spec.name] = []
    report.maxStreams[target.spec.name] = 0
  }
  for (const streams of levels) {
    for (const target of targets) {
      const name = target.spec.name
      if (!alive.has(name)) continue
      const opened = await ctx.loadgen.run<OpenResult>({ op: 'open', target: target.spec, count: streams, rotateEvery: 1000 })
      try {
        const { value: result, cpu } = await measured(ctx, target.pid, async () => await ctx.loadgen.run<TurnsResult>({
          op: 'round', target: name, staggerMs, recordGaps: true, stallMs, expect: { deltas: ctx.expect.paced.deltas }
        }))
        const passed = opened.errors === 0 && result.errors === 0 && result.lost === 0 && result.stalls === 0 && result.turnsOk === streams
        // Sorted once: at the top levels this is a few hundred thousand gaps.
        const gapMs = summarize(result.gapsMs)
        report.targets[name]?.push({
          streams,
          passed,
          turnsOk: result.turnsOk,
          errors: result.errors,
          errorSamples: [...opened.errorSamples, ...result.errorSamples].slice(0, 5),
          lost: result.lost,
          stalls: result.stalls,
          maxGapMs: Math.round(result.maxGapMs * 10) / 10,
          gapMs,
          ttftMs: summarize(result.ttftMs),
          connectFailures: opened.errors,
          cpu
        })
        const relayCores = cpu.cpuS['relay'] === undefined ? '' : `, relay ${(cpu.cpuS['relay'] / cpu.wallS).toFixed(2)} cores`
        ctx.log(`concurrency: ${name} ${streams} streams: ${passed ? 'ok' : 'FAILED'} (gap p99 ${gapMs.p99.toFixed(1)} ms, max ${result.maxGapMs.toFixed(0)} ms, ` +
          `stalls ${result.stalls}, lost ${result.lost}, errors ${result.errors + opened.errors}${relayCores})`)
        // The most streams is the highest level reached with every level up to it passing; the
        // ramp goes on (for the chart) until deltas go missing or the gap p99 passes GIVE_UP_FACTOR × the pacing.
        if (report.targets[name]?.every((r) => r.passed) === true) report.maxStreams[name] = streams
        if (opened.errors > 0 || result.errors > 0 || result.lost > 0 || gapMs.p99 >= GIVE_UP_FACTOR * (1000 / ctx.options.tokensPerSecond)) alive.delete(name)
      } finally {
        await ctx.loadgen.run({ op: 'close', target: name })
      }
    }
    if (alive.size === 0) break
  }
  return report
}
