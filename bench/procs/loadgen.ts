/**
 * The load generator: a child process of the harness (bench/run.ts), forked with an IPC
 * channel. It holds pools of sessions per target and runs the jobs the harness sends (see
 * bench/lib/protocol.ts), one at a time, replying with raw samples. It never decides what a
 * run measures; it only drives clients and times them.
 */
import { performance } from 'node:perf_hooks'
import type { FromChild, IdleResult, Job, JobResult, LoopResult, OpenResult, TargetSpec, ToChild, TurnsResult } from '../lib/protocol.js'
import { openSession, RealtimeSession, type BenchSession, type TurnOptions, type TurnSample } from './clients.js'
import { reconnectTrials } from './reconnect.js'

interface Pool { target: TargetSpec, sessions: BenchSession[], rotateEvery: number }

const pools = new Map<string, Pool>()
const idle: RealtimeSession[] = []

function send (message: FromChild): void {
  process.send?.(message)
}

const progress = (line: string): void => send({ progress: line })

function emptyTurns (): TurnsResult {
  return { turnsOk: 0, errors: 0, errorSamples: [], ttftMs: [], gapsMs: [], maxGapMs: 0, stalls: 0, lost: 0, deltas: 0, wallMs: 0 }
}

function record (into: TurnsResult, outcome: PromiseSettledResult<TurnSample>): void {
  if (outcome.status === 'rejected') {
    into.errors++
    if (into.errorSamples.length < 5) into.errorSamples.push(outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason))
    return
  }
  const sample = outcome.value
  into.turnsOk++
  into.ttftMs.push(sample.ttftMs)
  for (const gap of sample.gapsMs) into.gapsMs.push(gap)
  into.maxGapMs = Math.max(into.maxGapMs, sample.maxGapMs)
  into.stalls += sample.stalls
  into.deltas += sample.deltas
  if (!sample.complete) into.lost++
}

async function settle<T> (promise: Promise<T>): Promise<PromiseSettledResult<T>> {
  try {
    return { status: 'fulfilled', value: await promise }
  } catch (reason) {
    return { status: 'rejected', reason }
  }
}

/** One turn, rotating to a fresh conversation first when the session has had its share. */
async function turnOn (session: BenchSession, rotateEvery: number, options: TurnOptions): Promise<TurnSample> {
  if (session.turns >= rotateEvery) await session.rotate()
  return await session.turn(options)
}

function pool (name: string): Pool {
  const found = pools.get(name)
  if (found === undefined) throw new Error(`no open sessions for ${name}`)
  return found
}

async function closePool (name: string): Promise<void> {
  const found = pools.get(name)
  pools.delete(name)
  await Promise.allSettled((found?.sessions ?? []).map(async (s) => s.close()))
}

/** Opens `count` sessions, at most `parallel` connects at a time. */
async function openMany (target: TargetSpec, count: number, parallel = 100): Promise<{ sessions: BenchSession[], result: OpenResult }> {
  const sessions: BenchSession[] = []
  const result: OpenResult = { opened: 0, errors: 0, errorSamples: [], connectMs: [] }
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++
      try {
        const { session, connectMs } = await openSession(target)
        sessions.push(session)
        result.opened++
        result.connectMs.push(connectMs)
      } catch (err) {
        result.errors++
        if (result.errorSamples.length < 5) result.errorSamples.push(err instanceof Error ? err.message : String(err))
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker))
  return { sessions, result }
}

async function ttft (job: Extract<Job, { op: 'ttft' }>): Promise<Record<string, TurnsResult>> {
  const results: Record<string, TurnsResult> = {}
  const sessions = new Map<string, BenchSession[]>()
  for (const target of job.targets) {
    const opened = await openMany(target, job.sessions)
    if (opened.result.errors > 0) throw new Error(`${target.name}: ${opened.result.errorSamples[0] ?? 'connect failed'}`)
    sessions.set(target.name, opened.sessions)
    results[target.name] = emptyTurns()
  }
  const options: TurnOptions = { recordGaps: true, stallMs: Number.POSITIVE_INFINITY, expect: job.expect }
  const total = job.warmup + job.samples
  try {
    for (let i = 0; i < total; i++) {
      // Rotate the order every sample so no target always goes first.
      const order = job.targets.map((_, k) => job.targets[(i + k) % job.targets.length]).filter((t): t is TargetSpec => t !== undefined)
      for (const target of order) {
        const session = sessions.get(target.name)?.[i % job.sessions]
        if (session === undefined) continue
        const outcome = await settle(turnOn(session, job.rotateEvery, options))
        const into = results[target.name]
        if (i >= job.warmup && into !== undefined) record(into, outcome)
      }
      if (i >= job.warmup && (i - job.warmup + 1) % Math.max(1, Math.floor(job.samples / 5)) === 0) progress(`ttft sample ${i - job.warmup + 1}/${job.samples}`)
    }
  } finally {
    await Promise.allSettled([...sessions.values()].flat().map(async (s) => s.close()))
  }
  return results
}

async function round (job: Extract<Job, { op: 'round' }>): Promise<TurnsResult> {
  const { sessions, rotateEvery } = pool(job.target)
  const result = emptyTurns()
  const options: TurnOptions = { recordGaps: job.recordGaps, stallMs: job.stallMs, expect: job.expect }
  const start = performance.now()
  const outcomes = await Promise.all(sessions.map(async (session, i) => {
    const delay = sessions.length <= 1 ? 0 : (i * job.staggerMs) / sessions.length
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay))
    return await settle(turnOn(session, rotateEvery, options))
  }))
  result.wallMs = performance.now() - start
  for (const outcome of outcomes) record(result, outcome)
  return result
}

async function loop (job: Extract<Job, { op: 'loop' }>): Promise<LoopResult> {
  const { sessions, rotateEvery } = pool(job.target)
  const result: LoopResult = { ...emptyTurns(), rotations: 0 }
  const options: TurnOptions = { recordGaps: false, stallMs: Number.POSITIVE_INFINITY, expect: job.expect }
  const start = performance.now()
  const end = start + job.durationMs
  await Promise.all(sessions.map(async (session) => {
    while (performance.now() < end) {
      if (session.turns >= rotateEvery) result.rotations++
      const outcome = await settle(turnOn(session, rotateEvery, options))
      record(result, outcome)
      if (outcome.status === 'rejected') break
    }
  }))
  result.wallMs = performance.now() - start
  return result
}

async function openIdle (job: Extract<Job, { op: 'idle' }>): Promise<IdleResult> {
  const start = performance.now()
  const result: IdleResult = { open: 0, opened: 0, errors: 0, errorSamples: [], wallMs: 0 }
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < job.count) {
      next++
      try {
        idle.push((await RealtimeSession.open(job.url)).session)
        result.opened++
      } catch (err) {
        result.errors++
        if (result.errorSamples.length < 5) result.errorSamples.push(err instanceof Error ? err.message : String(err))
      }
      if (result.opened % 2000 === 0 && result.opened > 0) progress(`idle sessions: ${idle.length} open`)
    }
  }
  await Promise.all(Array.from({ length: Math.min(job.parallel, job.count) }, worker))
  result.open = idle.length
  result.wallMs = performance.now() - start
  return result
}

async function handle (job: Job): Promise<JobResult> {
  switch (job.op) {
    case 'ttft': return await ttft(job)
    case 'open': {
      await closePool(job.target.name)
      const { sessions, result } = await openMany(job.target, job.count)
      pools.set(job.target.name, { target: job.target, sessions, rotateEvery: job.rotateEvery })
      return result
    }
    case 'round': return await round(job)
    case 'loop': return await loop(job)
    case 'close':
      await closePool(job.target)
      return null
    case 'idle': return await openIdle(job)
    case 'closeIdle': {
      const sessions = idle.splice(0)
      for (let i = 0; i < sessions.length; i += 500) await Promise.allSettled(sessions.slice(i, i + 500).map(async (s) => s.close()))
      return null
    }
    case 'reconnect': return await reconnectTrials(job, progress)
  }
}

// Jobs run one at a time, in arrival order.
let queue = Promise.resolve()
process.on('message', (message: ToChild) => {
  queue = queue.then(async () => {
    try {
      send({ id: message.id, ok: true, result: await handle(message.job) })
    } catch (err) {
      send({ id: message.id, ok: false, error: err instanceof Error ? err.message : String(err) })
    }
  })
})
// The harness going away (or closing the channel) ends the load generator.
process.on('disconnect', () => process.exit(0))
