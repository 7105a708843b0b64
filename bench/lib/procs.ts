/**
 * The harness's child processes: spawn, wait until ready, read their CPU time and RSS from
 * /proc, stop them. Every child is tracked and SIGKILLed if the harness exits first, so a run
 * never leaves a process behind. Loopback only; ports come from the kernel (never 6379).
 * Deliberately not test/helpers/redis.ts or child-gateway.ts: the bench is its own entry point
 * that imports only src/, and its figures need every child's pid (CPU, RSS, syscalls from /proc),
 * which those helpers keep to themselves.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

/** The repository root (bench/lib/ → ../..). */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const HOST = '127.0.0.1'

const running = new Set<ChildProcess>()
let hooked = false

function hookExit (): void {
  if (hooked) return
  hooked = true
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL')
  })
}

export interface Proc {
  readonly name: string
  readonly pid: number
  readonly child: ChildProcess
  /** The last few KB of its stdout and stderr, for error messages. */
  output (): string
  /** Resolves with the rest of the first stdout line starting with `prefix`. */
  line (prefix: string, timeoutMs: number): Promise<string>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  stop (graceMs?: number): Promise<void>
  readonly exited: boolean
}

/** Spawns a tracked child (in the repository root unless `cwd` says otherwise); its output is kept (last 8 KB) but not shown. */
export function spawnProc (name: string, command: string, args: readonly string[], env: Record<string, string>, cwd = ROOT): Proc {
  hookExit()
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  let output = ''
  let exited = false
  const lineWaiters = new Set<(line: string) => void>()
  let partial = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output = (output + chunk).slice(-8192)
    partial += chunk
    const lines = partial.split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) for (const waiter of [...lineWaiters]) waiter(line)
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { output = (output + chunk).slice(-8192) })
  const gone = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true
    running.delete(child)
    resolve()
  }))
  child.once('error', (err) => { output += `\nspawn failed: ${err.message}` })
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`)
  return {
    name,
    pid: child.pid,
    child,
    output: () => output,
    get exited () { return exited },
    line: (prefix, timeoutMs) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`${name}: no "${prefix}" line within ${timeoutMs} ms:\n${output}`)), timeoutMs)
      const onLine = (line: string): void => { if (line.startsWith(prefix)) finish(undefined, line.slice(prefix.length).trim()) }
      const finish = (err: Error | undefined, value = ''): void => {
        clearTimeout(timer)
        lineWaiters.delete(onLine)
        if (err === undefined) resolve(value)
        else reject(err)
      }
      lineWaiters.add(onLine)
      gone.then(() => finish(new Error(`${name} exited before it was ready:\n${output}`)), () => {})
    }),
    stop: async (graceMs = 5000) => {
      if (exited) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await gone
      clearTimeout(timer)
    }
  }
}

/** A port nobody listens on now: listen on 0, read it, close. Never 6379. */
export async function freePort (): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, HOST, () => {
        const address = server.address()
        const found = typeof address === 'object' && address !== null ? address.port : 0
        server.close(() => resolve(found))
      })
    })
    if (port !== 6379 && port !== 0) return port
  }
}

/** Polls `url` until it answers `status` (or the process exits, or `timeoutMs` passes). */
export async function waitForHttp (proc: Proc, url: string, timeoutMs: number, status = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`${proc.name} exited during start-up:\n${proc.output()}`)
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) })
      await response.arrayBuffer()
      if (response.status === status) return
    } catch {
      // not listening yet
    }
    await sleep(50)
  }
  throw new Error(`${proc.name} did not answer ${url} within ${timeoutMs} ms:\n${proc.output()}`)
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const CLK_TCK = 100

/** CPU seconds (user + system) the process has used so far, or NaN when unreadable. */
export function cpuSeconds (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces) start at the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return Number.NaN
  }
}

/** Resident set size in bytes, or NaN when unreadable. */
export function rssBytes (pid: number): number {
  try {
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kb === undefined ? Number.NaN : Number(kb) * 1024
  } catch {
    return Number.NaN
  }
}

/** Read and write system calls the process has made so far (`/proc/<pid>/io`), NaN when unreadable. */
export function syscalls (pid: number): { reads: number, writes: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8')
    return { reads: Number(/^syscr:\s+(\d+)/m.exec(io)?.[1] ?? Number.NaN), writes: Number(/^syscw:\s+(\d+)/m.exec(io)?.[1] ?? Number.NaN) }
  } catch {
    return { reads: Number.NaN, writes: Number.NaN }
  }
}

/** The soft limit on open files this process (and so its children) runs with. */
export function openFilesLimit (): number {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]
    return line === undefined || line === 'unlimited' ? Number.POSITIVE_INFINITY : Number(line)
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

/** CPU seconds of several processes, read together. */
export function cpuOf (pids: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, pid] of Object.entries(pids)) out[name] = cpuSeconds(pid)
  return out
}
