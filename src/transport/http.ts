/**
 * Plain HTTP routes: liveness (`/healthz`), readiness (`/readyz`: the store answers and the
 * upstream can be reached, loudly when simulated), Prometheus metrics (`/metrics`) and a tenant's
 * usage per day (`GET /v1/usage`, with the same keys as the WebSocket).
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import type { KeyRing } from '../auth/key-ring.js'
import { gatewayError, isGatewayError, httpErrorBody, type GatewayError } from '../errors.js'
import type { SessionManager } from '../session/session-manager.js'
import type { Backend } from '../store/conversation-store.js'
import { usageDay } from '../store/usage-store.js'
import { authenticate } from './auth.js'

export interface HttpRoutesOptions {
  /** The default upstream; absent when MODELS_FILE routes every model and there is none. */
  readonly upstream?: { readonly kind: 'openai-compatible' | 'simulator', readonly baseURL: string }
  /** Further upstreams (MODELS_FILE routes) whose reachability counts for readiness too. */
  readonly routedBaseURLs?: readonly string[]
  readonly backend: Backend
  readonly sessions: SessionManager
  /** The Prometheus exposition; absent: no /metrics route. */
  readonly metrics?: { readonly contentType: string, render (): Promise<string> }
  /** The gateway's keys, for /v1/usage. */
  readonly keys: KeyRing
  /** How often an upstream is probed for /readyz at most, in ms (default 2000). */
  readonly upstreamCheckIntervalMs?: number
}

/** How long the upstream probe waits for any answer, in ms. */
const PROBE_TIMEOUT_MS = 2_000
const DAY = /^\d{4}-\d{2}-\d{2}$/

const plugin: FastifyPluginAsync<HttpRoutesOptions> = async (app, options) => {
  const { upstream, backend, sessions, metrics, keys } = options
  const interval = options.upstreamCheckIntervalMs ?? 2_000
  const probes = [...(upstream === undefined ? [] : [upstream.baseURL]), ...(options.routedBaseURLs ?? [])]
    .filter((url, index, all) => all.indexOf(url) === index)
    .map((baseURL) => new UpstreamProbe(baseURL, interval))

  app.get('/healthz', async (_request, reply) => sessions.draining
    ? await reply.code(503).send({ status: 'draining' })
    : { status: 'ok' })

  app.get('/readyz', async (_request, reply) => {
    const [storeReady, reach] = await Promise.all([backend.ready(), Promise.all(probes.map(async (probe) => probe.check()))])
    const status = sessions.draining ? 'draining' : !storeReady ? 'store unavailable' : reach.some((r) => !r.reachable) ? 'upstream unreachable' : 'ready'
    const first = upstream === undefined ? undefined : reach[0]
    const routes = upstream === undefined ? reach : reach.slice(1)
    return await reply.code(status === 'ready' ? 200 : 503).send({
      status,
      sessions: sessions.size,
      store: backend.kind,
      upstream: upstream === undefined
        ? { kind: 'routes only', warning: 'no default upstream: only the models of MODELS_FILE are served' }
        : {
            ...(upstream.kind === 'simulator'
              ? { kind: 'simulator', warning: 'SIMULATED UPSTREAM: no OPENAI_BASE_URL / OPENAI_API_KEY set; replies are fake' }
              : { kind: 'openai-compatible', baseURL: upstream.baseURL }),
            reachable: first?.reachable ?? true,
            ...(first?.detail === undefined ? {} : { detail: first.detail })
          },
      ...(routes.length > 0 ? { routes: routes.map(({ baseURL, reachable, detail }) => ({ baseURL, reachable, ...(detail === undefined ? {} : { detail }) })) } : {})
    })
  })

  if (metrics !== undefined) {
    app.get('/metrics', async (_request, reply) => await reply.type(metrics.contentType).send(await metrics.render()))
  }

  app.get<{ Querystring: { date?: string } }>('/v1/usage', async (request, reply) => {
    const principal = authenticate(request.headers, keys)
    if (principal === undefined) return await refuse(reply, gatewayError('GW_ERR_AUTH_UNAUTHORIZED'))
    if (principal.ephemeral !== undefined) return await refuse(reply, gatewayError('GW_ERR_AUTH_EPHEMERAL_FORBIDDEN', ['read usage']))
    const date = request.query.date ?? usageDay(new Date())
    if (typeof date !== 'string' || !DAY.test(date) || Number.isNaN(Date.parse(date))) {
      return await refuse(reply, gatewayError('GW_ERR_INVALID_REQUEST', ['date must be a day as YYYY-MM-DD (UTC)'], { param: 'date' }))
    }
    let totals
    try {
      totals = await backend.usage.read(principal.tenant, date)
    } catch (err) {
      request.log.warn({ err }, 'usage read failed')
      return await refuse(reply, isGatewayError(err) ? err : gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: err }))
    }
    return {
      object: 'usage.day',
      tenant: principal.tenant,
      date,
      responses: totals.responses,
      input_tokens: totals.inputTokens,
      output_tokens: totals.outputTokens,
      total_tokens: totals.inputTokens + totals.outputTokens,
      cached_input_tokens: totals.cachedInputTokens,
      estimated_responses: totals.estimatedResponses
    }
  })
}

async function refuse (reply: FastifyReply, err: GatewayError): Promise<FastifyReply> {
  return await reply.code(err.statusCode).send(httpErrorBody(err))
}

interface Reachability { readonly baseURL: string, readonly reachable: boolean, readonly detail?: string }

/**
 * Whether an upstream can be reached: `GET <baseURL>/models`, at most once per `intervalMs`
 * (concurrent checks share one request). Any HTTP answer counts as reachable — many
 * compatible servers do not implement /models, or want a key for it; only a connection
 * failure or no answer within PROBE_TIMEOUT_MS counts as unreachable.
 */
class UpstreamProbe {
  readonly #baseURL: string
  readonly #intervalMs: number
  #last: { readonly at: number, readonly result: Reachability } | undefined
  #running: Promise<Reachability> | undefined

  constructor (baseURL: string, intervalMs: number) {
    this.#baseURL = baseURL
    this.#intervalMs = intervalMs
  }

  async check (): Promise<Reachability> {
    const last = this.#last
    if (last !== undefined && performance.now() - last.at < this.#intervalMs) return last.result
    this.#running ??= this.#probe().then((result) => {
      this.#last = { at: performance.now(), result }
      this.#running = undefined
      return result
    })
    return await this.#running
  }

  async #probe (): Promise<Reachability> {
    const baseURL = this.#baseURL
    try {
      const response = await fetch(`${baseURL.replace(/\/+$/, '')}/models`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS), redirect: 'manual' })
      await response.body?.cancel()
      return { baseURL, reachable: true }
    } catch (err) {
      return { baseURL, reachable: false, detail: describe(err) }
    }
  }
}

/** A short, key-free reason a probe failed: the socket error code, or the error's name. */
function describe (err: unknown): string {
  const cause = err instanceof Error ? err.cause : undefined
  if (typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string') return cause.code
  return err instanceof Error ? err.name : 'unknown error'
}

export const httpRoutes = fp(plugin, { name: 'tokenwire-http', fastify: '5.x' })
