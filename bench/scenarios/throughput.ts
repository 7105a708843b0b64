/**
 * Relay throughput with an unpaced upstream: C sockets (or SDK streams) per target each run
 * turns back to back for a fixed time; the figure is text deltas delivered per second, with
 * the CPU time the relaying process spent per 1,000 of them and the TTFT tail at that load.
 * Cells run target by target in rotating order per level. Each session starts a fresh
 * conversation every `ROTATE_EVERY` turns, the same on every path, so the history sent upstream
 * stays small and equal.
 */
import type { LoopResult, OpenResult } from '../lib/protocol.js'
import { addWindows, commandsBetween, emptyWindow } from '../lib/redis-probe.js'
import { finite, summarize, type Summary } from '../lib/stats.js'
import { measured, type Context, type PhaseCpu, type RunTarget } from './context.js'
import { redisCost, type RedisCost } from './paced.js'

const ROTATE_EVERY = 16
const WARMUP_MS = 600

export interface Cell {
  tokensPerS: number | null
  turnsOk: number
  errors: number
  errorSamples: string[]
  lost: number
  ttftMs: Summary
  /** CPU seconds of the relaying process per 1,000 delivered deltas (null: direct, nothing relays). */
  relayCpuMsPer1kTokens: number | null
  /** Write system calls of the relaying process per delivered delta (frames leave one write each unless coalesced). */
  relayWritesPerToken: number | null
  cpu: PhaseCpu
}

export interface ThroughputReport {
  replyTokens: number
  durationMs: number
  levels: number[]
  /** cells[concurrency][target] */
  cells: Record<string, Record<string, Cell>>
  /** Each target's tokens/s over the bare relay's, the direct floor's and the peer's, per level. */
  ratios: Record<string, Record<string, { vsBareRelay: number | null, vsDirect: number | null, vsPeer: number | null }>>
  redis: RedisCost | undefined
}

export async function runThroughput (ctx: Context, targets: RunTarget[]): Promise<ThroughputReport> {
  const { levels, durationMs } = ctx.options.throughput
  const report: ThroughputReport = { replyTokens: ctx.expect.fast.deltas, durationMs, levels, cells: {}, ratios: {}, redis: undefined }
  let window = emptyWindow()
  let redisTokens = 0
  let redisTurns = 0
  const expect = { deltas: ctx.expect.fast.deltas }
  // Warm every path at the first level, untimed.
  for (const target of targets) {
    await ctx.loadgen.run<OpenResult>({ op: 'open', target: target.spec, count: levels[0] ?? 1, rotateEvery: ROTATE_EVERY })
    await ctx.loadgen.run<LoopResult>({ op: 'loop', target: target.spec.name, durationMs: WARMUP_MS, expect })
    await ctx.loadgen.run({ op: 'close', target: target.spec.name })
  }
  for (const [index, concurrency] of levels.entries()) {
    const row: Record<string, Cell> = {}
    const order = targets.map((_, k) => targets[(index + k) % targets.length]).filter((t): t is RunTarget => t !== undefined)
    for (const target of order) {
      const name = target.spec.name
      const opened = await ctx.loadgen.run<OpenResult>({ op: 'open', target: target.spec, count: concurrency, rotateEvery: ROTATE_EVERY })
      try {
        const isRedis = name === 'gateway-redis'
        const before = isRedis ? await ctx.probe.quietSample() : undefined
        const { value: result, cpu } = await measured(ctx, target.pid, async () => await ctx.loadgen.run<LoopResult>({ op: 'loop', target: name, durationMs, expect }))
        if (before !== undefined) {
          window = addWindows(window, commandsBetween(before, await ctx.probe.quietSample()))
          redisTokens += result.deltas
          redisTurns += result.turnsOk
        }
        const relay = cpu.cpuS['relay']
        row[name] = {
          tokensPerS: finite(result.deltas / (result.wallMs / 1000)),
          turnsOk: result.turnsOk,
          errors: result.errors + opened.errors,
          errorSamples: [...opened.errorSamples, ...result.errorSamples].slice(0, 5),
          lost: result.lost,
          ttftMs: summarize(result.ttftMs),
          relayCpuMsPer1kTokens: relay === undefined || result.deltas === 0 ? null : finite((relay * 1000) / (result.deltas / 1000)),
          relayWritesPerToken: cpu.relaySyscalls === undefined || result.deltas === 0 ? null : finite(cpu.relaySyscalls.writes / result.deltas),
          cpu
        }
        ctx.log(`throughput: ${name} x${concurrency}: ${Math.round(result.deltas / (result.wallMs / 1000))} tokens/s` +
          `${relay === undefined ? '' : `, ${((relay * 1e6) / Math.max(1, result.deltas)).toFixed(1)} us CPU per token`}${result.errors > 0 ? `, ${result.errors} errors` : ''}`)
      } finally {
        await ctx.loadgen.run({ op: 'close', target: name })
      }
    }
    report.cells[String(concurrency)] = row
    const bare = row['bare-relay']?.tokensPerS ?? null
    const direct = row['direct']?.tokensPerS ?? null
    const peer = row['peer']?.tokensPerS ?? null
    const ratios: ThroughputReport['ratios'][string] = {}
    for (const [name, cell] of Object.entries(row)) {
      const tps = cell.tokensPerS
      ratios[name] = {
        vsBareRelay: tps === null || bare === null ? null : finite(tps / bare),
        vsDirect: tps === null || direct === null ? null : finite(tps / direct),
        vsPeer: tps === null || peer === null ? null : finite(tps / peer)
      }
    }
    report.ratios[String(concurrency)] = ratios
  }
  if (redisTokens > 0) report.redis = redisCost(window, redisTokens, redisTurns)
  return report
}
