/**
 * Memory per idle connected session: a fresh gateway per store (with the inspector on
 * loopback, to force full GCs), warmed by opening and closing a few sessions, then holding N
 * idle sessions (connected, `session.created` received, nothing sent). RSS and V8 heap are
 * read after two forced GCs; the figure is (value at N − value at 0) / N.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { collectAndMeasure, type HeapFigures } from '../lib/inspector.js'
import { freePort, openFilesLimit, rssBytes } from '../lib/procs.js'
import type { IdleResult } from '../lib/protocol.js'
import { startGateway } from '../lib/services.js'
import type { Context } from './context.js'

/** File descriptors each side needs beyond one per session (listeners, Redis, stdio, upstream pool). */
const FD_HEADROOM = 300
const SETTLE_MS = 1000

export interface MemoryPoint {
  sessions: number
  rssBytes: number
  heapUsedBytes: number
  rssPerSessionKB: number
  heapPerSessionKB: number
  connectSeconds: number
  errors: number
}

export interface MemoryReport {
  openFilesLimit: number | null
  /** Counts asked for that did not fit under the open-files limit (not run), with the reason. */
  skipped: Array<{ sessions: number, reason: string }>
  /** Per store. */
  stores: Record<string, { baseline: { rssBytes: number, heapUsedBytes: number }, points: MemoryPoint[], error?: string }>
}

async function measure (port: number, pid: number): Promise<HeapFigures> {
  const figures = await collectAndMeasure(port)
  await sleep(200)
  // RSS from /proc after the GC (memoryUsage's rss is read before the GC's pages are returned).
  return { ...figures, rss: rssBytes(pid) }
}

export async function runMemory (ctx: Context): Promise<MemoryReport> {
  const limit = openFilesLimit()
  const report: MemoryReport = { openFilesLimit: Number.isFinite(limit) ? limit : null, skipped: [], stores: {} }
  const counts: number[] = []
  for (const count of [...ctx.options.memory.counts].sort((a, b) => a - b)) {
    if (count + FD_HEADROOM > limit) {
      const reason = `needs about ${count + FD_HEADROOM} open files per process, but ulimit -n is ${limit}; raise it (ulimit -n ${count + FD_HEADROOM + 1000}) to measure ${count} sessions`
      ctx.log(`memory: skipping ${count} idle sessions: ${reason}`)
      report.skipped.push({ sessions: count, reason })
    } else {
      counts.push(count)
    }
  }
  if (counts.length === 0) return report
  for (const store of ['redis', 'memory'] as const) {
    const inspectPort = await freePort()
    const name = `gateway-${store}-idle`
    const gateway = await startGateway({ name, upstreamURL: ctx.upstream.urls.paced, inspectPort, ...(store === 'redis' ? { redisURL: ctx.redis.url } : {}), env: ctx.options.batchLingerMs === undefined ? {} : { BATCH_LINGER_MS: String(ctx.options.batchLingerMs) } })
    const entry: MemoryReport['stores'][string] = { baseline: { rssBytes: 0, heapUsedBytes: 0 }, points: [] }
    report.stores[`gateway-${store}`] = entry
    try {
      // Warm-up: first sessions load code paths and fill caches that are not per-session cost.
      await ctx.loadgen.run<IdleResult>({ op: 'idle', url: gateway.url, count: 200, parallel: 50 })
      await ctx.loadgen.run({ op: 'closeIdle' })
      await sleep(SETTLE_MS)
      const base = await measure(inspectPort, gateway.proc.pid)
      entry.baseline = { rssBytes: base.rss, heapUsedBytes: base.heapUsed }
      let open = 0
      for (const count of counts) {
        const opened = await ctx.loadgen.run<IdleResult>({ op: 'idle', url: gateway.url, count: count - open, parallel: 100 })
        open = opened.open
        await sleep(SETTLE_MS)
        const now = await measure(inspectPort, gateway.proc.pid)
        const point: MemoryPoint = {
          sessions: open,
          rssBytes: now.rss,
          heapUsedBytes: now.heapUsed,
          rssPerSessionKB: Math.round(((now.rss - base.rss) / open / 1024) * 100) / 100,
          heapPerSessionKB: Math.round(((now.heapUsed - base.heapUsed) / open / 1024) * 100) / 100,
          connectSeconds: Math.round(opened.wallMs) / 1000,
          errors: opened.errors
        }
        entry.points.push(point)
        ctx.log(`memory: ${name} ${open} idle sessions: ${point.rssPerSessionKB} KB RSS, ${point.heapPerSessionKB} KB heap per session (opened in ${point.connectSeconds} s${opened.errors > 0 ? `, ${opened.errors} failed: ${opened.errorSamples[0] ?? ''}` : ''})`)
      }
    } catch (err) {
      entry.error = err instanceof Error ? err.message : String(err)
      ctx.log(`memory: ${name} failed: ${entry.error}`)
    } finally {
      await ctx.loadgen.run({ op: 'closeIdle' })
      await gateway.stop()
    }
  }
  return report
}
