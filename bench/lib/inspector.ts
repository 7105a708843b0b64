/**
 * Talks to a child's inspector (started with `--inspect=127.0.0.1:PORT`) to force a full
 * garbage collection and read `process.memoryUsage()`, so idle-session memory is measured on
 * live objects, not on garbage the collector has not visited yet.
 */
import WebSocket from 'ws'
import { HOST } from './procs.js'

export interface HeapFigures { rss: number, heapUsed: number, heapTotal: number, external: number, arrayBuffers: number }

async function debuggerUrl (port: number): Promise<string> {
  const response = await fetch(`http://${HOST}:${port}/json/list`, { signal: AbortSignal.timeout(5000) })
  const targets = await response.json() as Array<{ webSocketDebuggerUrl?: string }>
  const url = targets[0]?.webSocketDebuggerUrl
  if (url === undefined) throw new Error('inspector: no debugger target')
  return url
}

/** A command channel to one child's inspector. */
async function connect (port: number): Promise<{ call: (method: string, params?: Record<string, unknown>) => Promise<unknown>, close: () => void }> {
  const ws = new WebSocket(await debuggerUrl(port))
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  let nextId = 1
  const call = (method: string, params: Record<string, unknown> = {}): Promise<unknown> => new Promise((resolve, reject) => {
    const id = nextId++
    const timer = setTimeout(() => reject(new Error(`inspector: ${method} timed out`)), 60_000)
    const onMessage = (data: Buffer): void => {
      const message = JSON.parse(data.toString('utf8')) as { id?: number, result?: unknown, error?: { message: string } }
      if (message.id !== id) return
      clearTimeout(timer)
      ws.off('message', onMessage)
      if (message.error !== undefined) reject(new Error(`inspector: ${message.error.message}`))
      else resolve(message.result)
    }
    ws.on('message', onMessage)
    ws.send(JSON.stringify({ id, method, params }))
  })
  return { call, close: () => ws.close() }
}

/** Runs a full GC in the child, then returns its memoryUsage() (bytes). */
export async function collectAndMeasure (port: number): Promise<HeapFigures> {
  const { call, close } = await connect(port)
  try {
    // Twice: the first pass may leave objects only a second one frees (weak callbacks, finalizers).
    await call('HeapProfiler.collectGarbage')
    await call('HeapProfiler.collectGarbage')
    const result = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true }) as { result?: { value?: string } }
    return JSON.parse(result.result?.value ?? '{}') as HeapFigures
  } finally {
    close()
  }
}

/**
 * Starts the V8 CPU profiler in the child (sampling every 200 µs), so start-up is left out of
 * the profile; `stop()` resolves the `.cpuprofile` JSON.
 */
export async function startProfiler (port: number): Promise<{ stop: () => Promise<string> }> {
  const { call, close } = await connect(port)
  await call('Profiler.enable')
  await call('Profiler.setSamplingInterval', { interval: 200 })
  await call('Profiler.start')
  return {
    stop: async () => {
      try {
        const result = await call('Profiler.stop') as { profile: unknown }
        return JSON.stringify(result.profile)
      } finally {
        close()
      }
    }
  }
}
