/**
 * The rate limits in Redis: each call is one Lua script on one key (hash-tagged by key id, so it
 * runs on Redis Cluster), timed by the server's own clock (`TIME`), so every instance sees the
 * same buckets and the limits are exact however many instances share them.
 *   `<prefix>rl:{<keyId>}`    hash: r, r_ts, t, t_ts (bucket levels and when they were computed)
 *   `<prefix>sock:{<keyId>}`  sorted set: socket id → slot expiry (ms)
 */
import type { Cluster, Redis } from 'ioredis'
import { statusOf, type LimitStatus, type RateLimitStore } from './rate-limits.js'

/**
 * KEYS[1]: bucket hash. ARGV: requestsPerMin, tokensPerMin, requestCost, tokenCost, mode.
 * mode `take`: all-or-nothing; mode `settle`: adds the costs back (never above the limit, never
 * below minus the limit). Returns {granted, requests level, tokens level, wait ms}, levels ×1000.
 */
export const BUCKET_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limits = { tonumber(ARGV[1]), tonumber(ARGV[2]) }
local costs = { tonumber(ARGV[3]), tonumber(ARGV[4]) }
local settle = ARGV[5] == 'settle'
local names = { 'r', 't' }
local state = redis.call('HMGET', KEYS[1], 'r', 'r_ts', 't', 't_ts')
local levels = {}
for i = 1, 2 do
  if limits[i] > 0 then
    local level = tonumber(state[i * 2 - 1])
    local at = tonumber(state[i * 2])
    if level == nil or at == nil then level = limits[i]; at = now end
    if now > at then level = level + (now - at) * limits[i] / 60000 end
    if level > limits[i] then level = limits[i] end
    levels[i] = level
  end
end
local granted = 1
local wait = 0
if not settle then
  for i = 1, 2 do
    if levels[i] ~= nil and levels[i] < costs[i] then
      granted = 0
      local w = math.ceil((costs[i] - levels[i]) * 60000 / limits[i])
      if w > wait then wait = w end
    end
  end
end
if granted == 1 then
  for i = 1, 2 do
    if levels[i] ~= nil then
      if settle then
        levels[i] = math.max(-limits[i], math.min(limits[i], levels[i] + costs[i]))
      else
        levels[i] = levels[i] - costs[i]
      end
      redis.call('HSET', KEYS[1], names[i], string.format('%.6f', levels[i]), names[i] .. '_ts', now)
    end
  end
  redis.call('PEXPIRE', KEYS[1], 180000)
end
local function milli (level) if level == nil then return -1 end return math.floor(level * 1000) end
return { granted, milli(levels[1]), milli(levels[2]), wait }
`

/**
 * KEYS[1]: the key's socket set. ARGV: socket id, max, ttl ms. Drops expired slots; holds (or
 * extends) this socket's unless `max` others are held. Returns 1 or 0.
 */
export const SOCKET_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
`

type BucketReply = [number, number, number, number]

interface LimitCommands {
  twBucket (key: string, ...args: Array<string | number>): Promise<BucketReply>
  twSocket (key: string, ...args: Array<string | number>): Promise<number>
}

export interface RedisRateLimitsOptions {
  readonly client: Redis | Cluster
  readonly keyPrefix: string
  /** Runs one call with the backend's readiness wait and error mapping. */
  readonly run: <T>(call: () => Promise<T>) => Promise<T>
}

export function createRedisRateLimits ({ client, keyPrefix, run }: RedisRateLimitsOptions): RateLimitStore {
  client.defineCommand('twBucket', { lua: BUCKET_SCRIPT, numberOfKeys: 1 })
  client.defineCommand('twSocket', { lua: SOCKET_SCRIPT, numberOfKeys: 1 })
  const commands = client as unknown as LimitCommands
  const bucketKey = (keyId: string) => `${keyPrefix}rl:{${keyId}}`
  const socketKey = (keyId: string) => `${keyPrefix}sock:{${keyId}}`

  const statuses = (limits: { requestsPerMin: number, tokensPerMin: number }, reply: BucketReply): LimitStatus[] => [
    ...(limits.requestsPerMin > 0 ? [statusOf('requests', limits.requestsPerMin, reply[1] / 1000)] : []),
    ...(limits.tokensPerMin > 0 ? [statusOf('tokens', limits.tokensPerMin, reply[2] / 1000)] : [])
  ]

  return {
    async take (keyId, limits, cost) {
      const reply = await run(() => commands.twBucket(bucketKey(keyId), limits.requestsPerMin, limits.tokensPerMin, cost.requests, cost.tokens, 'take'))
      const status = statuses(limits, reply)
      if (reply[0] === 1) return { granted: true, status }
      const requestsShort = limits.requestsPerMin > 0 && reply[1] / 1000 < cost.requests
      return { granted: false, status, exceeded: requestsShort ? 'requests' : 'tokens', retryAfterMs: reply[3] }
    },
    async settle (keyId, limits, tokens) {
      if (limits.tokensPerMin <= 0) return []
      const reply = await run(() => commands.twBucket(bucketKey(keyId), 0, limits.tokensPerMin, 0, tokens, 'settle'))
      return statuses({ requestsPerMin: 0, tokensPerMin: limits.tokensPerMin }, reply)
    },
    async holdSocket (keyId, socketId, max, ttlMs) {
      return await run(() => commands.twSocket(socketKey(keyId), socketId, max, Math.max(1, Math.ceil(ttlMs)))) === 1
    },
    async releaseSocket (keyId, socketId) {
      await run(() => client.zrem(socketKey(keyId), socketId))
    }
  }
}
