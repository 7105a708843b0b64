/**
 * What every scenario gets from the harness: the options, the load generator, the shared
 * processes (upstream, Redis, bare relay, peer), the reply texts, and helpers to start
 * gateways and to measure the CPU the processes spend over a phase.
 */
import { performance } from 'node:perf_hooks'
import type { Peer } from '../lib/peer.js'
import { cpuOf, syscalls } from '../lib/procs.js'
import type { Expect, TargetSpec } from '../lib/protocol.js'
import type { RedisProbe } from '../lib/redis-probe.js'
import { startGateway, type GatewayProc, type LoadGen, type RedisProc } from '../lib/services.js'
import type { Proc } from '../lib/procs.js'
import type { Options } from '../lib/options.js'

/** The three upstream simulators: unpaced, paced at the stream rate, and the reconnect one. */
export type UpstreamName = 'fast' | 'paced' | 'resume'

export interface Context {
  readonly options: Options
  readonly loadgen: LoadGen
  readonly upstream: { readonly proc: Proc, readonly urls: Readonly<Record<UpstreamName, string>> }
  readonly redis: RedisProc
  readonly probe: RedisProbe
  readonly bare: { readonly proc: Proc, url (upstreamURL: string): string }
  /** Undefined when the peer could not be run (the reason is in the report). */
  readonly peer: Peer | undefined
  readonly expect: Readonly<Record<UpstreamName, Expect>>
  /** Where gateways write CPU profiles (`--profile`), else undefined. */
  readonly profileDir: string | undefined
  log (line: string): void
}

/** A gateway pair (memory store, Redis store) in front of one upstream. */
export interface GatewayPair { memory: GatewayProc, redis: GatewayProc }

export async function startPair (ctx: Context, upstream: UpstreamName, label: string, env: Record<string, string> = {}): Promise<GatewayPair> {
  const common = { upstreamURL: ctx.upstream.urls[upstream], env, ...(ctx.profileDir === undefined ? {} : { cpuProfileDir: ctx.profileDir }) }
  const [memory, redis] = await Promise.all([
    startGateway({ ...common, name: `gateway-memory-${label}` }),
    startGateway({ ...common, name: `gateway-redis-${label}`, redisURL: ctx.redis.url })
  ])
  return { memory, redis }
}

export async function stopPair (pair: GatewayPair | undefined): Promise<void> {
  if (pair === undefined) return
  await Promise.allSettled([pair.memory.stop(), pair.redis.stop()])
}

/** The targets a scenario may drive, by name, each with the process (if any) that relays it. */
export interface RunTarget { spec: TargetSpec, pid?: number }

export function targetsFor (ctx: Context, upstream: UpstreamName, pair: GatewayPair, withPeer: boolean): RunTarget[] {
  const url = ctx.upstream.urls[upstream]
  const targets: RunTarget[] = [
    { spec: { name: 'direct', kind: 'sdk', url } },
    { spec: { name: 'bare-relay', kind: 'realtime', url: ctx.bare.url(url) }, pid: ctx.bare.proc.pid },
    { spec: { name: 'gateway-memory', kind: 'realtime', url: pair.memory.url }, pid: pair.memory.proc.pid },
    { spec: { name: 'gateway-redis', kind: 'realtime', url: pair.redis.url }, pid: pair.redis.proc.pid }
  ]
  if (withPeer && ctx.peer !== undefined) targets.push({ spec: ctx.peer.target('peer', url), pid: ctx.peer.proc.pid })
  return targets
}

/** CPU seconds each process spent over a phase, and the phase's wall time. */
export interface PhaseCpu {
  wallS: number
  /** Seconds of CPU per process name (relay = the process under test, when there is one). */
  cpuS: Record<string, number>
  /** Read and write system calls of the process under test over the phase. */
  relaySyscalls?: { reads: number, writes: number }
}

/** Runs `phase`, reading the processes' CPU time before and after it. */
export async function measured<T> (ctx: Context, relayPid: number | undefined, phase: () => Promise<T>): Promise<{ value: T, cpu: PhaseCpu }> {
  const pids: Record<string, number> = { upstream: ctx.upstream.proc.pid, loadgen: ctx.loadgen.pid, redis: ctx.redis.proc.pid }
  if (relayPid !== undefined) pids['relay'] = relayPid
  const before = cpuOf(pids)
  const ioBefore = relayPid === undefined ? undefined : syscalls(relayPid)
  const start = performance.now()
  const value = await phase()
  const wallS = (performance.now() - start) / 1000
  const after = cpuOf(pids)
  const ioAfter = relayPid === undefined ? undefined : syscalls(relayPid)
  const cpuS: Record<string, number> = {}
  for (const name of Object.keys(pids)) cpuS[name] = Math.round(((after[name] ?? Number.NaN) - (before[name] ?? Number.NaN)) * 1000) / 1000
  const relaySyscalls = ioBefore === undefined || ioAfter === undefined ? undefined : { reads: ioAfter.reads - ioBefore.reads, writes: ioAfter.writes - ioBefore.writes }
  return { value, cpu: { wallS: Math.round(wallS * 1000) / 1000, cpuS, ...(relaySyscalls === undefined ? {} : { relaySyscalls }) } }
}
