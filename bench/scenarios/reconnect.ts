/**
 * Reconnect to another instance: two gateways (A, B) on the same Redis, in front of a paced
 * upstream. A client cuts its socket to A in the middle of a reply and reconnects to B with
 * `conversation_id` + `resume_after`; timed to `session.created` and to the first replayed
 * event. Two variants: at once (the next event may not exist yet: mostly the wait for the
 * next token, relayed through Redis pub/sub), and after `offlineMs` (events piled up in the
 * log: the replay path itself).
 */
import type { ReconnectVariant } from '../lib/protocol.js'
import { startGateway } from '../lib/services.js'
import { summarize, type Summary } from '../lib/stats.js'
import type { Context } from './context.js'

const CUT_AFTER = 5

export interface ReconnectReport {
  replyTokens: number
  tokenDelayMs: number
  cutAfterDeltas: number
  variants: Array<{
    offlineMs: number
    trialsOk: number
    errors: number
    errorSamples: string[]
    sessionCreatedMs: Summary
    firstReplayedEventMs: Summary
    firstReplayedEventTypes: Record<string, number>
    duplicateEventIds: number
    textMismatches: number
    notCompleted: number
  }>
}

export async function runReconnect (ctx: Context, tokenDelayMs: number): Promise<ReconnectReport> {
  const env = ctx.options.batchLingerMs === undefined ? {} : { BATCH_LINGER_MS: String(ctx.options.batchLingerMs) }
  const profile = ctx.profileDir === undefined ? {} : { cpuProfileDir: ctx.profileDir }
  const [a, b] = await Promise.all(['A', 'B'].map(async (label) => await startGateway({
    name: `gateway-redis-${label}`, upstreamURL: ctx.upstream.urls.resume, redisURL: ctx.redis.url, env: { ...env, REDIS_KEY_PREFIX: 'bench-resume:' }, ...profile
  })))
  if (a === undefined || b === undefined) throw new Error('two instances expected')
  try {
    const { trials, offlineMs } = ctx.options.reconnect
    ctx.log(`reconnect: ${trials} trials per variant (at once, ${offlineMs.filter((ms) => ms > 0).join(', ')} ms later), A -> B on one Redis`)
    const variants = await ctx.loadgen.run<ReconnectVariant[]>({ op: 'reconnect', urlA: a.url, urlB: b.url, trials, offlineMs, cutAfter: CUT_AFTER, expect: ctx.expect.resume })
    return {
      replyTokens: ctx.expect.resume.deltas,
      tokenDelayMs,
      cutAfterDeltas: CUT_AFTER,
      variants: variants.map((v) => {
        const types: Record<string, number> = {}
        for (const t of v.trials) types[t.firstReplayType] = (types[t.firstReplayType] ?? 0) + 1
        return {
          offlineMs: v.offlineMs,
          trialsOk: v.trials.length,
          errors: v.errors,
          errorSamples: v.errorSamples,
          sessionCreatedMs: summarize(v.trials.map((t) => t.sessionCreatedMs)),
          firstReplayedEventMs: summarize(v.trials.map((t) => t.firstReplayMs)),
          firstReplayedEventTypes: types,
          duplicateEventIds: v.trials.reduce((sum, t) => sum + t.duplicateIds, 0),
          textMismatches: v.trials.filter((t) => !t.textMatches).length,
          notCompleted: v.trials.filter((t) => t.status !== 'completed').length
        }
      })
    }
  } finally {
    await Promise.allSettled([a.stop(), b.stop()])
  }
}
