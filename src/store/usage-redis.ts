/**
 * Usage totals in Redis, shared by every instance: one hash per tenant per day,
 * `<prefix>usage:<day>:<tenant>`, whose fields are bumped with HINCRBY and whose TTL is renewed
 * in the same MULTI (one key: one slot, so Redis Cluster works too).
 */
import type { Cluster, Redis } from 'ioredis'
import { gatewayError } from '../errors.js'
import { USAGE_RETENTION_DAYS, ZERO_USAGE, type UsageStore, type UsageTotals } from './usage-store.js'

export interface RedisUsageOptions {
  readonly client: Redis | Cluster
  readonly keyPrefix: string
}

const RETENTION_MS = USAGE_RETENTION_DAYS * 24 * 60 * 60 * 1000

/** Each total and its hash field. */
const FIELDS: ReadonlyArray<readonly [keyof UsageTotals, string]> = [
  ['responses', 'responses'],
  ['inputTokens', 'input_tokens'],
  ['outputTokens', 'output_tokens'],
  ['cachedInputTokens', 'cached_input_tokens'],
  ['estimatedResponses', 'estimated_responses']
]

export function createRedisUsage ({ client, keyPrefix }: RedisUsageOptions): UsageStore {
  const keyOf = (tenant: string, day: string): string => `${keyPrefix}usage:${day}:${tenant}`
  return {
    async add (tenant, day, usage) {
      const key = keyOf(tenant, day)
      const transaction = client.multi()
      for (const [name, field] of FIELDS) {
        if (usage[name] !== 0) transaction.hincrby(key, field, usage[name])
      }
      transaction.pexpire(key, RETENTION_MS)
      let replies: Array<[Error | null, unknown]> | null
      try {
        replies = await transaction.exec()
      } catch (err) {
        throw gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: err, retryable: true })
      }
      const failed = replies === null ? new Error('usage transaction aborted') : replies.find(([err]) => err !== null)?.[0]
      if (failed != null) throw gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: failed })
    },
    async read (tenant, day) {
      let fields: Record<string, string>
      try {
        fields = await client.hgetall(keyOf(tenant, day))
      } catch (err) {
        throw gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: err, retryable: true })
      }
      const totals = { ...ZERO_USAGE }
      for (const [name, field] of FIELDS) {
        const value = Number(fields[field] ?? 0)
        totals[name] = Number.isSafeInteger(value) ? value : 0
      }
      return totals
    }
  }
}
