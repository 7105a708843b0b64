/**
 * The backends a multi-instance scenario runs on. `options()` says how to point instances at
 * it; Redis processes are started on first use, with a fresh key prefix per scenario, and
 * stopped by `stopBackends()` (call it in afterAll).
 */
import { randomUUID } from 'node:crypto'
import type { InstancesOptions } from './instances.js'
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from './redis.js'

export interface BackendCase {
  readonly name: string
  readonly options: () => Promise<InstancesOptions>
}

let single: Promise<RedisServer> | undefined
let cluster: Promise<RedisCluster> | undefined

const prefix = () => `tw-test-${randomUUID().slice(0, 8)}:`

export function backends (): BackendCase[] {
  return [
    { name: 'the memory store (one backend object shared in process)', options: async () => ({ sharedMemory: true }) },
    {
      name: 'one Redis node',
      options: async () => {
        single ??= startRedis()
        return { env: { REDIS_URL: (await single).url, REDIS_KEY_PREFIX: prefix() } }
      }
    },
    {
      name: 'a 3-master Redis Cluster',
      options: async () => {
        cluster ??= startRedisCluster()
        const nodes = (await cluster).nodes.map((n) => `${n.host}:${n.port}`).join(',')
        return { env: { REDIS_CLUSTER_NODES: nodes, REDIS_KEY_PREFIX: prefix() } }
      }
    }
  ]
}

/** The stores a single-instance scenario runs on: the environment that selects each. */
export function stores (): Array<{ name: string, env: () => Promise<Record<string, string>> }> {
  return [
    { name: 'the memory store', env: async () => ({}) },
    {
      name: 'Redis',
      env: async () => {
        single ??= startRedis()
        return { REDIS_URL: (await single).url, REDIS_KEY_PREFIX: prefix() }
      }
    }
  ]
}

export async function stopBackends (): Promise<void> {
  const running = [single, cluster]
  single = undefined
  cluster = undefined
  await Promise.allSettled(running.map(async (server) => (await server)?.stop()))
}
