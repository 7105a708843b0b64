/**
 * Usage totals in process memory (the embedded backend): one instance only, lost on restart.
 * Bounded by tenants × retention days: days older than the retention are dropped as days pass.
 */
import { USAGE_RETENTION_DAYS, ZERO_USAGE, usageDay, type UsageStore, type UsageTotals } from './usage-store.js'

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

const DAY_MS = 24 * 60 * 60 * 1000

export function createMemoryUsage (now: () => number = Date.now): UsageStore {
  /** Day → tenant → totals. */
  const days = new Map<string, Map<string, Mutable<UsageTotals>>>()
  const prune = (): void => {
    const oldest = usageDay(new Date(now() - USAGE_RETENTION_DAYS * DAY_MS))
    for (const day of days.keys()) if (day < oldest) days.delete(day)
  }
  return {
    async add (tenant, day, usage) {
      if (!days.has(day)) prune()
      let tenants = days.get(day)
      if (tenants === undefined) days.set(day, tenants = new Map())
      const totals = tenants.get(tenant) ?? { ...ZERO_USAGE }
      totals.responses += usage.responses
      totals.inputTokens += usage.inputTokens
      totals.outputTokens += usage.outputTokens
      totals.cachedInputTokens += usage.cachedInputTokens
      totals.estimatedResponses += usage.estimatedResponses
      tenants.set(tenant, totals)
    },
    async read (tenant, day) {
      const totals = days.get(day)?.get(tenant)
      return totals === undefined ? ZERO_USAGE : { ...totals }
    }
  }
}
