/**
 * Adds every response this gateway ends to its tenant's usage for the day (UTC), from the
 * diagnostics channels: the tenant from `upstreamRequest` (this gateway's sessions only), the
 * usage from `responseDone`. A write that fails is logged with the usage it carried and counted
 * as a Redis error (`tokenwire_redis_errors_total{operation="usage"}`), never dropped silently.
 */
import { redisError, responseDone, upstreamRequest, type ResponseEnded } from '../diagnostics.js'
import type { Log } from '../logger.js'
import { usageDay, type UsageStore, type UsageTotals } from '../store/usage-store.js'

export interface UsageRecorderOptions {
  readonly store: UsageStore
  /** The gateway whose sessions are recorded (see usage/with-tenant.ts). */
  readonly scope: object
  readonly log: Log
  /** Clock, for tests. */
  readonly now?: () => Date
}

export interface UsageRecorder {
  /** Resolves once every write started so far has settled (before the store closes). */
  flush (): Promise<void>
  /** Stops recording. */
  close (): void
}

export function recordUsage ({ store, scope, log, now = () => new Date() }: UsageRecorderOptions): UsageRecorder {
  /** Upstream request → tenant, for this gateway's sessions. */
  const tenants = new WeakMap<object, string>()
  const writes = new Set<Promise<void>>()

  const record = ({ request, response }: ResponseEnded): void => {
    const tenant = tenants.get(request)
    if (tenant === undefined) return // another gateway's response (tests run several in one process)
    const usage = response.usage
    const totals: UsageTotals = {
      responses: 1,
      inputTokens: usage?.input_tokens ?? 0,
      outputTokens: usage?.output_tokens ?? 0,
      cachedInputTokens: usage?.input_token_details?.cached_tokens ?? 0,
      estimatedResponses: usage !== undefined && 'estimated' in usage && usage.estimated === true ? 1 : 0
    }
    const day = usageDay(now())
    const write = store.add(tenant, day, totals).catch((err: unknown) => {
      log.error({ err, tenant, day, usage: totals, responseId: response.id }, 'usage record failed')
      if (redisError.hasSubscribers) redisError.publish({ operation: 'usage', error: err })
    }).finally(() => writes.delete(write))
    writes.add(write)
  }

  const unsubscribes = [
    upstreamRequest.subscribe((message) => { if (message.scope === scope) tenants.set(message.request, message.tenant) }),
    responseDone.subscribe(record)
  ]
  return {
    async flush () {
      await Promise.allSettled([...writes])
    },
    close () {
      for (const unsubscribe of unsubscribes.splice(0)) unsubscribe()
    }
  }
}
