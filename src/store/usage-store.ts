/**
 * Token usage per tenant per UTC day, shared like the conversations: every instance adds the
 * responses it ends, any instance reads the totals. Kept USAGE_RETENTION_DAYS days.
 */

/** What one tenant used on one day (or what one response adds to it). */
export interface UsageTotals {
  /** Responses ended (any status). */
  readonly responses: number
  readonly inputTokens: number
  readonly outputTokens: number
  /** Of the input tokens, those the upstream served from its prompt cache. */
  readonly cachedInputTokens: number
  /** Responses whose usage the gateway estimated because the upstream reported none. */
  readonly estimatedResponses: number
}

export const ZERO_USAGE: UsageTotals = Object.freeze({ responses: 0, inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, estimatedResponses: 0 })

/** How long a day's totals are kept after its last write. */
export const USAGE_RETENTION_DAYS = 35

export interface UsageStore {
  /** Adds `usage` to `tenant`'s totals for `day` (`YYYY-MM-DD`, UTC) in one atomic step; rejects if not stored. */
  add (tenant: string, day: string, usage: UsageTotals): Promise<void>
  /** `tenant`'s totals for `day`: zeros when nothing was recorded (or it expired). */
  read (tenant: string, day: string): Promise<UsageTotals>
}

/** The UTC day of a time, as the usage store keys it. */
export function usageDay (at: Date): string {
  return at.toISOString().slice(0, 10)
}
