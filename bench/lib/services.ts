/**
 * Starts what a run measures, each in its own process on loopback: the upstream simulators,
 * a redis-server, gateways (`node --import tsx src/server.ts`, LOG_LEVEL=silent), the bare
 * relay, and the load generator (forked, with an IPC channel).
 */
import { fork } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startProfiler } from './inspector.js'
import type { FromChild, Job, JobResult, ToChild } from './protocol.js'
import { HOST, ROOT, freePort, spawnProc, waitForHttp, type Proc } from './procs.js'

const START_TIMEOUT_MS = 60_000
const baseEnv = (): Record<string, string> => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...(process.env['HOME'] === undefined ? {} : { HOME: process.env['HOME'] }) })

export interface UpstreamSpec { name: string, firstTokenDelayMs: number, tokenDelayMs: number, text: string }

/** The simulators, all in one process: `urls[name]` is each one's SDK base URL. */
export async function startUpstream (specs: readonly UpstreamSpec[]): Promise<{ proc: Proc, urls: Record<string, string> }> {
  const proc = spawnProc('upstream', process.execPath, ['--import', 'tsx', 'bench/procs/upstream.ts', JSON.stringify(specs)], baseEnv())
  const urls = JSON.parse(await proc.line('READY', START_TIMEOUT_MS)) as Record<string, string>
  return { proc, urls }
}

export interface RedisProc { proc: Proc, url: string, port: number }

/** A throwaway redis-server: a free port, no persistence. */
export async function startRedisServer (): Promise<RedisProc> {
  const port = await freePort()
  const proc = spawnProc('redis', 'redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--maxclients', '1000'], baseEnv())
  const deadline = Date.now() + START_TIMEOUT_MS
  while (!/Ready to accept connections/.test(proc.output())) {
    if (proc.exited) throw new Error(`redis-server exited during start-up:\n${proc.output()}`)
    if (Date.now() > deadline) throw new Error(`redis-server not ready within ${START_TIMEOUT_MS} ms:\n${proc.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { proc, url: `redis://${HOST}:${port}`, port }
}

export interface GatewayOptions {
  name: string
  upstreamURL: string
  redisURL?: string
  /** More environment (e.g. BATCH_LINGER_MS). */
  env?: Record<string, string>
  /**
   * Profile the gateway's CPU (the V8 sampling profiler `node --cpu-prof` uses, started through
   * the inspector once the gateway is up, so start-up is left out) and write
   * `<dir>/<name>.cpuprofile` when it stops.
   */
  cpuProfileDir?: string
  /** Open the inspector on this loopback port (the idle-memory scenario forces GCs through it). */
  inspectPort?: number
  /** Run the gateway of another checkout (its `src/server.ts`), e.g. to compare two versions in one run. */
  root?: string
}

export interface GatewayProc {
  readonly proc: Proc
  readonly port: number
  readonly url: string
  readonly name: string
  /** Stops it (writing its CPU profile first, when profiled). */
  stop (): Promise<void>
}

/** The gateway in its own process, from source, silent. Resolves once /healthz answers. */
export async function startGateway (options: GatewayOptions): Promise<GatewayProc> {
  const port = await freePort()
  const inspectPort = options.inspectPort ?? (options.cpuProfileDir === undefined ? undefined : await freePort())
  const flags = inspectPort === undefined ? [] : [`--inspect=${HOST}:${inspectPort}`]
  const env: Record<string, string> = {
    ...baseEnv(),
    HOST,
    PORT: String(port),
    LOG_LEVEL: 'silent',
    OPENAI_BASE_URL: options.upstreamURL,
    OPENAI_API_KEY: 'sk-test-not-real',
    // The upstream request is then the same as the direct client's (no tool definitions).
    BUILTIN_TOOLS: 'none',
    MAX_SESSIONS: '30000',
    MEMORY_STORE_MAX_CONVERSATIONS: '30000',
    SHUTDOWN_GRACE_MS: '3000',
    ...(options.redisURL === undefined ? {} : { REDIS_URL: options.redisURL, REDIS_KEY_PREFIX: `bench-${options.name}:` }),
    ...options.env
  }
  const proc = spawnProc(options.name, process.execPath, [...flags, '--import', 'tsx', 'src/server.ts'], env, options.root)
  let profiler: { stop: () => Promise<string> } | undefined
  try {
    await waitForHttp(proc, `http://${HOST}:${port}/healthz`, START_TIMEOUT_MS)
    if (options.cpuProfileDir !== undefined && inspectPort !== undefined) profiler = await startProfiler(inspectPort)
  } catch (err) {
    await proc.stop(1000)
    throw err
  }
  const dir = options.cpuProfileDir
  return {
    proc,
    port,
    name: options.name,
    url: `ws://${HOST}:${port}/v1/realtime?model=gpt-4o`,
    stop: async () => {
      if (profiler !== undefined && dir !== undefined && !proc.exited) {
        try {
          writeFileSync(join(dir, `${options.name}.cpuprofile`), await profiler.stop())
        } catch {
          // The profile is a bonus; the stop is what matters.
        }
      }
      await proc.stop()
    }
  }
}

/** The bare relay (bench/procs/bare-relay.ts); `url(upstream)` is a socket URL relaying to that simulator. */
export async function startBareRelay (): Promise<{ proc: Proc, url: (upstreamURL: string) => string }> {
  const proc = spawnProc('bare-relay', process.execPath, ['--import', 'tsx', 'bench/procs/bare-relay.ts', '0'], baseEnv())
  const port = Number(await proc.line('READY', START_TIMEOUT_MS))
  return { proc, url: (upstreamURL) => `ws://${HOST}:${port}/v1/realtime?upstream=${encodeURIComponent(upstreamURL)}` }
}

/** The harness's handle on the load generator process. */
export interface LoadGen {
  readonly pid: number
  run<T extends JobResult> (job: Job): Promise<T>
  stop (): Promise<void>
}

/** Forks the load generator; its progress lines go to `onProgress`. */
export function startLoadGen (onProgress: (line: string) => void): LoadGen {
  const child = fork(join(ROOT, 'bench/procs/loadgen.ts'), [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  if (child.pid === undefined) throw new Error('could not start the load generator')
  let nextId = 1
  const pending = new Map<number, { resolve: (value: JobResult) => void, reject: (err: Error) => void }>()
  child.on('message', (message: FromChild) => {
    if ('progress' in message) return onProgress(message.progress)
    const waiter = pending.get(message.id)
    pending.delete(message.id)
    if (message.ok) waiter?.resolve(message.result)
    else waiter?.reject(new Error(`load generator: ${message.error}`))
  })
  child.once('exit', (code, signal) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`load generator exited (${signal ?? code ?? ''})`))
    pending.clear()
  })
  process.once('exit', () => child.kill('SIGKILL'))
  return {
    pid: child.pid,
    run: async <T extends JobResult>(job: Job) => await new Promise<T>((resolve, reject) => {
      const id = nextId++
      pending.set(id, { resolve: resolve as (value: JobResult) => void, reject })
      child.send({ id, job } satisfies ToChild)
    }),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const gone = new Promise((resolve) => child.once('exit', resolve))
      child.disconnect()
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await gone
      clearTimeout(timer)
    }
  }
}
