/**
 * The backends a multi-instance scenario runs on. `options()` says how to point instances at
 * it (Redis processes are started on first use and stopped by `stopBackends`).
 */
import type { InstancesOptions } from './instances.js'

export interface BackendCase {
  readonly name: string
  readonly options: () => Promise<InstancesOptions>
}

export function backends (): BackendCase[] {
  return [
    { name: 'the memory store (one backend object shared in process)', options: async () => ({ sharedMemory: true }) }
  ]
}
