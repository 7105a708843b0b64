/**
 * The gateway's Prometheus metrics: one prom-client Registry per gateway, fed only by the
 * diagnostics channels (src/diagnostics.ts). Imported by app.ts alone; /metrics renders it.
 *
 * Timings (all on this instance's monotonic clock, in seconds):
 * - time to first token: a response's start (`response.created` is produced, after the lease and
 *   the history read) → its first output event (text delta or tool call) from the upstream;
 * - inter-token gap: between consecutive output events of one response;
 * - gateway latency, stage `before_upstream`: the lease request for a conversation response
 *   (right after its response.create is taken up) → its upstream request starts;
 *   stage `first_token`: the first output event → the frame that shows it
 *   (`response.output_item.added`) handed to the first local client socket.
 * Labels are bounded: models past `maxModels` distinct values, tenants past `maxTenants`, are `other`.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import {
  deviceAttached, deviceDetached, redisError, responseDone, responseOutput, responseReserve, responseStarted,
  socketFrame, upstreamEnd, upstreamRequest, upstreamRetry, type ResponseEnded, type ResponseStarted
} from '../diagnostics.js'
import { FastHistogram, type HistogramSeries } from './fast-histogram.js'
import { LabelCap, upstreamErrorKind } from './labels.js'

export interface MetricsOptions {
  /** Live sessions (open client sockets) on this gateway, read at each scrape. */
  readonly openSockets: () => number
  /** Distinct `model` label values kept; later new ones count as `other`. Default 20. */
  readonly maxModels?: number
  /** Distinct `tenant` label values kept; later new ones count as `other`. Default 1000. */
  readonly maxTenants?: number
}

export interface Metrics {
  /** The Content-Type of `render()`'s text. */
  readonly contentType: string
  /** The Prometheus text exposition of every metric. */
  render (): Promise<string>
  /** Stops listening to the channels. */
  close (): void
}

interface RunTimer {
  readonly id: string
  readonly model: string
  readonly startedAt: number
  lastOutputAt: number
  started: boolean
  readonly gaps: HistogramSeries
}

/** Responses followed at once, at most (a run that never ends must not grow the map forever). */
const MAX_TRACKED = 100_000
/** How long a pending timing (a lease request, a first frame) waits for its other end, in ms. */
const PENDING_TTL_MS = 30_000
/** Every frame starts so (the gateway serialises event_id first); the id holds no quote. */
const FRAME_HEAD = '{"event_id":"'
/** What follows the id's closing quote and comma in the frame that first shows a response's output. */
const FIRST_OUTPUT_MARK = '"type":"response.output_item.added","response_id":"'

export function createMetrics (options: MetricsOptions): Metrics {
  const registry = new Registry()
  const models = new LabelCap(options.maxModels ?? 20)
  const tenantLabels = new LabelCap(options.maxTenants ?? 1000)
  const runs = new Map<object, RunTimer>()
  const tenants = new WeakMap<object, string>()
  /** Response id → when its lease was requested. */
  const reserved = new Map<string, number>()
  /** Response id → when its first output was produced, until a socket is handed the frame. */
  const awaitingFrame = new Map<string, number>()

  const ttft = new Histogram({
    name: 'tokenwire_time_to_first_token_seconds',
    help: 'From the start of a response to its first output from the upstream',
    labelNames: ['model'],
    buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30],
    registers: [registry]
  })
  const interToken = new FastHistogram({
    name: 'tokenwire_inter_token_seconds',
    help: 'Gap between consecutive output events (tokens) of one response',
    labelNames: ['model'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2.5]
  })
  const gatewayLatency = new Histogram({
    name: 'tokenwire_gateway_latency_seconds',
    help: 'Latency the gateway adds: before_upstream (lease request to upstream request), first_token (first output to its frame on a socket)',
    labelNames: ['stage'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry]
  })
  const responses = new Counter({
    name: 'tokenwire_responses_total',
    help: 'Responses ended on this instance, by status',
    labelNames: ['model', 'status'],
    registers: [registry]
  })
  const tokens = new Counter({
    name: 'tokenwire_tokens_total',
    help: 'Tokens of ended responses (usage as in response.done), by type input or output',
    labelNames: ['model', 'tenant', 'type'],
    registers: [registry]
  })
  const upstreamErrors = new Counter({
    name: 'tokenwire_upstream_errors_total',
    help: 'Failed upstream requests by kind; retried="true" for attempts that were retried',
    labelNames: ['kind', 'retried'],
    registers: [registry]
  })
  const redisErrors = new Counter({
    name: 'tokenwire_redis_errors_total',
    help: 'Failed Redis operations: the conversation store (unavailable, unexpected reply) and usage writes',
    labelNames: ['operation'],
    registers: [registry]
  })
  for (const operation of ['store', 'usage']) redisErrors.inc({ operation }, 0)
  // Read at scrape time.
  registry.registerMetric(new Gauge({
    name: 'tokenwire_open_sockets',
    help: 'Client sockets (sessions) open on this instance',
    registers: [],
    collect () { this.set(options.openSockets()) }
  }))
  registry.registerMetric(new Gauge({
    name: 'tokenwire_active_responses',
    help: 'Responses generating on this instance',
    registers: [],
    collect () { this.set(runs.size) }
  }))
  const devices = new Gauge({
    name: 'tokenwire_attached_devices',
    help: 'Client sockets attached to a conversation on this instance',
    registers: [registry]
  })

  const onStart = (message: ResponseStarted): void => {
    const now = performance.now()
    if (runs.size >= MAX_TRACKED) dropOldest(runs)
    const model = models.label(message.model)
    runs.set(message.run, { id: message.id, model, startedAt: now, lastOutputAt: now, started: false, gaps: interToken.series({ model }) })
    const reservedAt = take(reserved, message.id, now)
    if (reservedAt !== undefined) gatewayLatency.observe({ stage: 'before_upstream' }, (now - reservedAt) / 1000)
  }

  // Per token: one map lookup, one clock read, one bucket scan; nothing allocated.
  const onOutput = (run: object): void => {
    const timer = runs.get(run)
    if (timer === undefined) return
    const now = performance.now()
    if (timer.started) {
      timer.gaps.observe((now - timer.lastOutputAt) / 1000)
    } else {
      timer.started = true
      ttft.observe({ model: timer.model }, (now - timer.startedAt) / 1000)
      remember(awaitingFrame, timer.id, now)
    }
    timer.lastOutputAt = now
  }

  const onDone = (message: ResponseEnded): void => {
    runs.delete(message.run)
    const model = models.label(message.model)
    const { status, usage } = message.response
    responses.inc({ model, status: status ?? 'unknown' })
    if (usage === undefined) return
    const tenant = tenantLabels.label(tenants.get(message.request) ?? 'unknown')
    tokens.inc({ model, tenant, type: 'input' }, tokenCount(usage.input_tokens))
    tokens.inc({ model, tenant, type: 'output' }, tokenCount(usage.output_tokens))
  }

  // Per frame: a size check; only while a response waits for its first frame, a look at the
  // frame's type (a prefix comparison that fails at the first differing character).
  const onFrame = (frame: string): void => {
    if (awaitingFrame.size === 0) return
    const idEnd = frame.indexOf('"', FRAME_HEAD.length)
    if (idEnd === -1 || !frame.startsWith(FIRST_OUTPUT_MARK, idEnd + 2)) return
    const start = idEnd + 2 + FIRST_OUTPUT_MARK.length
    const now = performance.now()
    const producedAt = take(awaitingFrame, frame.slice(start, frame.indexOf('"', start)), now)
    if (producedAt !== undefined) gatewayLatency.observe({ stage: 'first_token' }, (now - producedAt) / 1000)
  }

  const countUpstreamError = (err: unknown, retried: 'true' | 'false'): void => {
    const kind = upstreamErrorKind(err)
    if (kind !== undefined) upstreamErrors.inc({ kind, retried })
  }

  const unsubscribes = [
    responseStarted.subscribe(onStart),
    responseOutput.subscribe(onOutput),
    responseDone.subscribe(onDone),
    responseReserve.subscribe((id) => remember(reserved, id, performance.now())),
    upstreamRequest.subscribe(({ request, tenant }) => tenants.set(request, tenant)),
    upstreamEnd.subscribe(({ error }) => { if (error !== undefined) countUpstreamError(error, 'false') }),
    upstreamRetry.subscribe((err) => countUpstreamError(err, 'true')),
    redisError.subscribe(({ operation }) => redisErrors.inc({ operation })),
    socketFrame.subscribe(onFrame),
    deviceAttached.subscribe(() => devices.inc()),
    deviceDetached.subscribe(() => devices.dec())
  ]

  return {
    contentType: registry.contentType,
    async render () {
      return `${await registry.metrics()}\n${interToken.render()}\n`
    },
    close () {
      for (const unsubscribe of unsubscribes.splice(0)) unsubscribe()
      runs.clear()
      reserved.clear()
      awaitingFrame.clear()
    }
  }
}

/** Sets `key`, first dropping entries older than PENDING_TTL_MS (oldest first) and, if full, the oldest. */
function remember (pending: Map<string, number>, key: string, now: number): void {
  for (const [oldKey, at] of pending) {
    if (now - at < PENDING_TTL_MS && pending.size < MAX_TRACKED) break
    pending.delete(oldKey)
  }
  pending.set(key, now)
}

/** Removes `key` and returns when it was set, unless it waited PENDING_TTL_MS or longer (then undefined). */
function take (pending: Map<string, number>, key: string, now: number): number | undefined {
  const at = pending.get(key)
  if (at === undefined) return undefined
  pending.delete(key)
  return now - at < PENDING_TTL_MS ? at : undefined
}

/**
 * A usage count as a counter takes it: the upstream's numbers arrive unchecked, and prom-client
 * throws on a negative or non-numeric one, which a channel listener must never do.
 */
function tokenCount (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0
}

function dropOldest (map: Map<object, unknown>): void {
  const oldest = map.keys().next()
  if (oldest.done !== true) map.delete(oldest.value)
}
