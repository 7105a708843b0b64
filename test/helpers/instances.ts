/**
 * Several gateway instances on one conversation backend and one upstream simulator: the
 * multi-instance setup of issue 3. `memory`: one in-process MemoryBackend object shared by
 * the instances; `redis` / `cluster`: each instance has its own RedisStore connections.
 */
import { loadConfig } from '../../src/config.js'
import { createMemoryBackend } from '../../src/store/memory-store.js'
import { startSimulator, type Simulator } from '../../src/simulator/simulator.js'
import { startGateway, type TestGateway } from './build-app.js'

export interface Instances {
  readonly sim: Simulator
  readonly gateways: TestGateway[]
  close (): Promise<void>
}

export interface InstancesOptions {
  readonly count?: number
  /** Environment for every instance (e.g. REDIS_URL, LEASE_TTL_MS). */
  readonly env?: Record<string, string>
  /** Use one shared in-process memory backend instead of the env's store. */
  readonly sharedMemory?: boolean
}

export async function startInstances (options: InstancesOptions = {}): Promise<Instances> {
  const sim = await startSimulator()
  // The shared memory backend takes its limits from the same environment the instances get.
  const { store, session } = loadConfig(options.env ?? {})
  const shared = options.sharedMemory === true
    ? createMemoryBackend({ maxConversations: store.maxConversations, ttlMs: store.ttlMs, maxLogEvents: store.maxLogEvents, maxItems: session.maxItemsPerConversation })
    : undefined
  const gateways: TestGateway[] = []
  try {
    for (let i = 0; i < (options.count ?? 2); i++) {
      gateways.push(await startGateway({ sim, ...(options.env === undefined ? {} : { env: options.env }), ...(shared === undefined ? {} : { deps: { backend: shared } }) }))
    }
  } catch (err) {
    await Promise.allSettled([...gateways.map(async (g) => g.close()), sim.close()])
    throw err
  }
  return {
    sim,
    gateways,
    async close () {
      await Promise.allSettled(gateways.map(async (g) => g.close()))
      await Promise.allSettled([shared?.close(), sim.close()])
    }
  }
}
