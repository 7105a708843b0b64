/**
 * Added time to first token at concurrency 1: every target (direct SDK, bare relay, gateway on
 * each store, peer) runs the same turns against the same unpaced simulator, one turn at a time,
 * interleaved in rotating order so machine noise lands on all alike. Timed from just before
 * the user's message is sent to the first text delta.
 */
import { finite, summarize, type Summary } from '../lib/stats.js'
import type { TurnsResult } from '../lib/protocol.js'
import type { Context, RunTarget } from './context.js'

export interface TtftTarget { ttftMs: Summary, turnsOk: number, errors: number, errorSamples: string[], lost: number }
export interface Added { p50Ms: number | null, p99Ms: number | null, p50Ratio: number | null, p99Ratio: number | null }

export interface TtftReport {
  samplesPerTarget: number
  targets: Record<string, TtftTarget>
  /** Each target against the direct floor of the same run. */
  vsDirect: Record<string, Added>
  /** Each target's added TTFT divided by the peer's added TTFT (when the peer ran). */
  addedVsPeer: Record<string, { p50: number | null, p99: number | null }>
}

export function addedOver (target: Summary, floor: Summary): Added {
  return {
    p50Ms: finite(target.p50 - floor.p50),
    p99Ms: finite(target.p99 - floor.p99),
    p50Ratio: finite(target.p50 / floor.p50),
    p99Ratio: finite(target.p99 / floor.p99)
  }
}

export async function runTtft (ctx: Context, targets: RunTarget[]): Promise<{ report: TtftReport, raw: Record<string, number[]> }> {
  const { samples, warmup, sessions, rotateEvery } = ctx.options.ttft
  ctx.log(`ttft: ${samples} turns per target (${targets.map((t) => t.spec.name).join(', ')}), one at a time`)
  const results = await ctx.loadgen.run<Record<string, TurnsResult>>({
    op: 'ttft', targets: targets.map((t) => t.spec), samples, warmup, sessions, rotateEvery, expect: ctx.expect.fast
  })
  const report: TtftReport = { samplesPerTarget: samples, targets: {}, vsDirect: {}, addedVsPeer: {} }
  const raw: Record<string, number[]> = {}
  for (const [name, result] of Object.entries(results)) {
    raw[name] = result.ttftMs
    report.targets[name] = { ttftMs: summarize(result.ttftMs), turnsOk: result.turnsOk, errors: result.errors, errorSamples: result.errorSamples, lost: result.lost }
  }
  const direct = report.targets['direct']?.ttftMs
  const peer = report.targets['peer']?.ttftMs
  for (const [name, target] of Object.entries(report.targets)) {
    if (direct === undefined || name === 'direct') continue
    report.vsDirect[name] = addedOver(target.ttftMs, direct)
    if (peer !== undefined && name !== 'peer') {
      report.addedVsPeer[name] = {
        p50: finite((target.ttftMs.p50 - direct.p50) / (peer.p50 - direct.p50)),
        p99: finite((target.ttftMs.p99 - direct.p99) / (peer.p99 - direct.p99))
      }
    }
  }
  return { report, raw }
}
