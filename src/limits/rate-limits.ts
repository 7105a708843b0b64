/**
 * Per-key rate limits: a token bucket per key for requests per minute and one for tokens per
 * minute (each refills at limit/60 per second up to `limit`), and a bounded set of socket slots.
 * `take` is all-or-nothing across both buckets; `settle` returns what a reservation over-took
 * (or charges what it under-took) once the real usage is known. The Redis implementation does
 * each call as one atomic script, so limits are exact across instances.
 */

/** A key's limits; 0 turns one off. */
export interface BucketLimits {
  readonly requestsPerMin: number
  readonly tokensPerMin: number
}

/** One limit as the Realtime `rate_limits.updated` event reports it. */
export interface LimitStatus {
  readonly name: 'requests' | 'tokens'
  readonly limit: number
  readonly remaining: number
  /** Seconds until the bucket is full again. */
  readonly resetSeconds: number
}

export type TakeResult =
  | { readonly granted: true, readonly status: LimitStatus[] }
  | { readonly granted: false, readonly status: LimitStatus[], readonly exceeded: 'requests' | 'tokens', readonly retryAfterMs: number }

export interface RateLimitStore {
  /** Takes `requests` and `tokens` from the key's buckets, or (refused) nothing at all. */
  take (keyId: string, limits: BucketLimits, cost: { readonly requests: number, readonly tokens: number }): Promise<TakeResult>
  /** Adds `tokens` back to the key's token bucket (negative: charges more); a bucket is never over-full. */
  settle (keyId: string, limits: BucketLimits, tokens: number): Promise<LimitStatus[]>
  /** Holds a socket slot for `ttlMs` (again: extends it); false when `max` others hold one. */
  holdSocket (keyId: string, socketId: string, max: number, ttlMs: number): Promise<boolean>
  releaseSocket (keyId: string, socketId: string): Promise<void>
}

const MINUTE_MS = 60_000

/** The status of a bucket at `level` tokens. */
export function statusOf (name: LimitStatus['name'], limit: number, level: number): LimitStatus {
  return {
    name,
    limit,
    remaining: Math.max(0, Math.floor(level)),
    resetSeconds: Math.max(0, Math.round((limit - level) * MINUTE_MS / limit) / 1000)
  }
}

/** Wait until `level` reaches `cost` at `limit` per minute, in ms. */
export function waitFor (cost: number, level: number, limit: number): number {
  return Math.ceil((cost - level) * MINUTE_MS / limit)
}

interface Bucket { level: number, at: number }

/** One instance's limits (the embedded mode), with the same arithmetic as the Redis script. */
export function createMemoryRateLimits (now: () => number = Date.now): RateLimitStore {
  const buckets = new Map<string, Bucket>()
  const sockets = new Map<string, Map<string, number>>()

  const level = (id: string, limit: number, t: number): Bucket => {
    const bucket = buckets.get(id) ?? { level: limit, at: t }
    bucket.level = Math.min(limit, bucket.level + Math.max(0, t - bucket.at) * limit / MINUTE_MS)
    bucket.at = t
    buckets.set(id, bucket)
    return bucket
  }
  const sweep = (t: number) => {
    // Full buckets carry no information: drop them so idle keys cost nothing.
    if (buckets.size > 10_000) for (const [id, b] of buckets) if (t - b.at > MINUTE_MS) buckets.delete(id)
  }

  return {
    async take (keyId, limits, cost) {
      const t = now()
      sweep(t)
      const r = limits.requestsPerMin > 0 ? level(`${keyId}|r`, limits.requestsPerMin, t) : undefined
      const k = limits.tokensPerMin > 0 ? level(`${keyId}|t`, limits.tokensPerMin, t) : undefined
      const short: Array<['requests' | 'tokens', number]> = []
      if (r !== undefined && r.level < cost.requests) short.push(['requests', waitFor(cost.requests, r.level, limits.requestsPerMin)])
      if (k !== undefined && k.level < cost.tokens) short.push(['tokens', waitFor(cost.tokens, k.level, limits.tokensPerMin)])
      if (short.length === 0) {
        if (r !== undefined) r.level -= cost.requests
        if (k !== undefined) k.level -= cost.tokens
      }
      const status = [
        ...(r === undefined ? [] : [statusOf('requests', limits.requestsPerMin, r.level)]),
        ...(k === undefined ? [] : [statusOf('tokens', limits.tokensPerMin, k.level)])
      ]
      if (short.length === 0) return { granted: true, status }
      const [exceeded, retryAfterMs] = short.reduce((a, b) => b[1] > a[1] ? b : a)
      return { granted: false, status, exceeded, retryAfterMs }
    },

    async settle (keyId, limits, tokens) {
      if (limits.tokensPerMin <= 0) return []
      const bucket = level(`${keyId}|t`, limits.tokensPerMin, now())
      bucket.level = Math.max(-limits.tokensPerMin, Math.min(limits.tokensPerMin, bucket.level + tokens))
      return [statusOf('tokens', limits.tokensPerMin, bucket.level)]
    },

    async holdSocket (keyId, socketId, max, ttlMs) {
      const t = now()
      const held = sockets.get(keyId) ?? new Map<string, number>()
      for (const [id, expires] of held) if (expires <= t) held.delete(id)
      if (!held.has(socketId) && held.size >= max) return false
      held.set(socketId, t + ttlMs)
      sockets.set(keyId, held)
      return true
    },

    async releaseSocket (keyId, socketId) {
      const held = sockets.get(keyId)
      held?.delete(socketId)
      if (held?.size === 0) sockets.delete(keyId)
    }
  }
}
