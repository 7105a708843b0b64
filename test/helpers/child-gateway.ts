/**
 * The gateway as a real child process (`node --import tsx src/server.ts`), for tests that must
 * stop an instance the way production does: SIGKILL (no shutdown hooks), or SIGTERM (the real
 * drain in server.ts). Its memory is its own, so tests can read its RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { killOnExit } from './kill-on-exit.js'

/** One parsed pino line of the child's stdout. */
export type ChildLogLine = Record<string, unknown> & { msg?: string, level?: number }

export interface ChildGateway {
  readonly port: number
  /** The realtime endpoint, `ws://127.0.0.1:PORT/v1/realtime?model=gpt-4o`. */
  readonly url: string
  /** `http://127.0.0.1:PORT`, for /healthz and /readyz. */
  readonly httpOrigin: string
  readonly process: ChildProcess
  /** The environment it was started with (without the defaults this helper adds). */
  readonly env: Readonly<Record<string, string>>
  /** Its stdout log lines so far, parsed, oldest first (the last MAX_LOG_LINES are kept). */
  readonly logs: readonly ChildLogLine[]
  /** Resolves with the first log line (already printed or still to come) that matches. */
  waitForLog (match: (line: ChildLogLine) => boolean, timeoutMs?: number): Promise<ChildLogLine>
  /** Its resident set size (VmRSS from /proc/<pid>/status), in bytes. */
  rssBytes (): Promise<number>
  /** Whether the process is still running. */
  readonly alive: boolean
  /** Kills it without warning and waits for it to be gone. */
  kill (): Promise<void>
  /**
   * Sends SIGTERM (the gateway's graceful shutdown) and resolves once it has exited, with its
   * exit code (null if a signal ended it) and how long it took. Rejects if it is still running
   * after `timeoutMs` (and then SIGKILLs it).
   */
  stop (timeoutMs?: number): Promise<{ code: number | null, signal: NodeJS.Signals | null, durationMs: number }>
}

const root = fileURLToPath(new URL('../..', import.meta.url))
const MAX_LOG_LINES = 10_000
const READY_TIMEOUT_MS = 60_000

export async function startChildGateway (env: Record<string, string>): Promise<ChildGateway> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', HEARTBEAT_INTERVAL_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  killOnExit(child)
  const exited = once(child, 'exit')
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })

  const logs: ChildLogLine[] = []
  const watchers = new Set<(line: ChildLogLine) => void>()
  let buffer = ''
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString()
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    for (const text of lines) {
      if (text.trim() === '') continue
      let line: ChildLogLine
      try {
        line = JSON.parse(text) as ChildLogLine
      } catch {
        line = { msg: text }
      }
      logs.push(line)
      if (logs.length > MAX_LOG_LINES) logs.splice(0, logs.length - MAX_LOG_LINES)
      for (const watch of watchers) watch(line)
    }
  })

  const waitForLog = async (match: (line: ChildLogLine) => boolean, timeoutMs = 10_000): Promise<ChildLogLine> => {
    const seen = logs.find(match)
    if (seen !== undefined) return seen
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.delete(watch)
        reject(new Error(`no matching gateway log line within ${timeoutMs} ms`))
      }, timeoutMs).unref()
      const watch = (line: ChildLogLine): void => {
        if (!match(line)) return
        clearTimeout(timer)
        watchers.delete(watch)
        resolve(line)
      }
      watchers.add(watch)
    })
  }

  const ready = waitForLog((line) => line.msg === 'tokenwire ready', READY_TIMEOUT_MS)
  const port = await Promise.race([
    ready.then((line) => Number(line['port'])),
    exited.then(() => { throw new Error(`gateway exited before it was ready: ${stderr}`) })
  ]).catch(async (err: unknown) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
    throw err
  })
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null

  return {
    port,
    url: `ws://127.0.0.1:${port}/v1/realtime?model=gpt-4o`,
    httpOrigin: `http://127.0.0.1:${port}`,
    process: child,
    env: { ...env },
    logs,
    waitForLog,
    get alive () { return !gone() },
    async rssBytes () {
      const status = await readFile(`/proc/${child.pid ?? 0}/status`, 'utf8')
      const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1]
      if (kb === undefined) throw new Error('no VmRSS in /proc/<pid>/status')
      return Number(kb) * 1024
    },
    async kill () {
      if (gone()) return
      child.kill('SIGKILL')
      await exited
    },
    async stop (timeoutMs = 30_000) {
      const started = Date.now()
      if (!gone()) {
        child.kill('SIGTERM')
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`gateway still running ${timeoutMs} ms after SIGTERM`)), timeoutMs)
        })
        try {
          await Promise.race([exited, timeout])
        } catch (err) {
          child.kill('SIGKILL')
          await exited
          throw err
        } finally {
          clearTimeout(timer)
        }
      }
      return { code: child.exitCode, signal: child.signalCode, durationMs: Date.now() - started }
    }
  }
}

/** Starts another instance with the same environment, on a new port (a restarted instance). */
export async function restartChildGateway (previous: ChildGateway): Promise<ChildGateway> {
  return startChildGateway({ ...previous.env })
}
