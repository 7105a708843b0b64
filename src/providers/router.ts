/**
 * Model routing: one ModelProvider in front of several upstreams. Each request goes to the
 * upstream whose MODELS_FILE route matches its model (exact name, else the longest `prefix*`),
 * else to the default upstream; when that upstream fails before the first token (after its own
 * retries) with an error another upstream may not have, the model's fallbacks are tried in turn.
 */
import type { Config } from '../config.js'
import { gatewayError, isGatewayError } from '../errors.js'
import type { Log } from '../logger.js'
import { matchModel, type ModelRoute } from './models-file.js'
import type { ModelProvider, ModelRequest } from './provider.js'

/** One upstream: where, and with which key. */
export interface Upstream {
  readonly baseURL: string
  readonly apiKey: string
}

export interface ModelRouterOptions {
  readonly routes: readonly ModelRoute[]
  /** Serves models no route matches. Absent: they fail with `model_not_found`. */
  readonly defaultUpstream?: Upstream
  /** Fallback models of a model whose route names none (UPSTREAM_FALLBACK_MODELS). */
  readonly fallbackModels: readonly string[]
  /** Builds the provider of one upstream; called once per distinct base URL and key. */
  readonly createProvider: (upstream: Upstream) => ModelProvider
  /** Told when a model's upstream failed and `to` is tried instead. */
  readonly onFallback?: (err: unknown, from: string, to: string) => void
  /**
   * Fits a request to its model's context budget. Applied to each candidate by its own name
   * (before any `upstreamModel` rename), from the uncut request: a fallback with a smaller
   * window gets a history cut for that window.
   */
  readonly fit?: (request: ModelRequest) => Promise<ModelRequest>
}

/** Stands in for the key of an upstream that needs none (the SDK insists on one). */
const NO_KEY = 'no-key-configured'

/** Failures another upstream may not have: 5xx, connection, timeout, 429, a model the upstream does not know. */
export function isFallbackWorthy (err: unknown): boolean {
  if (!isGatewayError(err)) return false
  switch (err.code) {
    case 'GW_ERR_PROVIDER_UNAVAILABLE':
    case 'GW_ERR_PROVIDER_TIMEOUT':
    case 'GW_ERR_PROVIDER_RATE_LIMITED':
    case 'GW_ERR_PROVIDER_STREAM_INTERRUPTED':
    case 'GW_ERR_MODEL_NOT_FOUND':
      return true
    case 'GW_ERR_PROVIDER_REJECTED':
      return statusOf(err.cause) === 404
    default:
      return false
  }
}

function statusOf (cause: unknown): number | undefined {
  return typeof cause === 'object' && cause !== null && 'status' in cause && typeof cause.status === 'number' ? cause.status : undefined
}

/** A ModelProvider that routes by `request.model`, with fallbacks. */
export function createModelRouter (options: ModelRouterOptions): ModelProvider {
  const providers = new Map<string, ModelProvider>()
  const providerOf = (upstream: Upstream): ModelProvider => {
    const key = `${upstream.baseURL}\n${upstream.apiKey}`
    let provider = providers.get(key)
    if (provider === undefined) {
      provider = options.createProvider(upstream)
      providers.set(key, provider)
    }
    return provider
  }
  // Every upstream's provider (and its connection pool) exists from the start.
  for (const route of options.routes) providerOf(upstreamOf(route))
  if (options.defaultUpstream !== undefined) providerOf(options.defaultUpstream)

  /** The provider and upstream model name for `model`, or undefined when nothing serves it. */
  const resolve = (model: string): { provider: ModelProvider, model: string, route?: ModelRoute } | undefined => {
    const route = matchModel(options.routes, model)
    if (route !== undefined) return { provider: providerOf(upstreamOf(route)), model: route.upstreamModel ?? model, route }
    if (options.defaultUpstream !== undefined) return { provider: providerOf(options.defaultUpstream), model }
    return undefined
  }

  return {
    async * stream (request, signal) {
      const first = resolve(request.model)
      if (first === undefined) throw gatewayError('GW_ERR_MODEL_NOT_FOUND', [JSON.stringify(request.model.slice(0, 128))], { param: 'model' })
      const fallbacks = (first.route?.fallback ?? options.fallbackModels).filter((name) => name !== request.model)
      const candidates = [request.model, ...fallbacks]
      for (const [index, name] of candidates.entries()) {
        const target = index === 0 ? first : resolve(name)
        if (target === undefined) continue // checked at boot; kept safe anyway
        let started = false
        try {
          const fitted = options.fit === undefined ? request : await options.fit({ ...request, model: name })
          for await (const event of target.provider.stream({ ...fitted, model: target.model }, signal)) {
            started = true
            yield event
          }
          return
        } catch (err) {
          const next = candidates[index + 1]
          if (started || signal.aborted || next === undefined || !isFallbackWorthy(err)) throw err
          options.onFallback?.(err, name, next)
        }
      }
    }
  }
}

function upstreamOf (route: ModelRoute): Upstream {
  return { baseURL: route.baseURL, apiKey: route.apiKey ?? NO_KEY }
}

/**
 * The model names clients may ask for by name: DEFAULT_MODEL, then every exact (non-pattern)
 * name of MODELS_FILE, in file order, each once. (`GET /v1/models` lists these.)
 */
export function configuredModels (config: Pick<Config, 'upstream'>): string[] {
  const names = [config.upstream.defaultModel, ...config.upstream.routing.routes.map((route) => route.model).filter((name) => !name.endsWith('*'))]
  return [...new Set(names)]
}

/**
 * The gateway's upstream provider: the default upstream's alone, or — with MODELS_FILE or
 * UPSTREAM_FALLBACK_MODELS — the router over every configured upstream. `createProvider` builds
 * one upstream's provider (with its retries). The default upstream serves unrouted models unless
 * MODELS_FILE is the only upstream configuration.
 */
export function createUpstreamProvider (routing: Config['upstream']['routing'], defaultUpstream: Upstream, createProvider: (upstream: Upstream) => ModelProvider, log: Log, fit: (request: ModelRequest) => Promise<ModelRequest>): ModelProvider {
  if (routing.routes.length === 0 && routing.fallbackModels.length === 0) {
    const provider = createProvider(defaultUpstream)
    return { async * stream (request, signal) { yield * provider.stream(await fit(request), signal) } }
  }
  return createModelRouter({
    routes: routing.routes,
    ...(routing.hasDefault ? { defaultUpstream } : {}),
    fallbackModels: routing.fallbackModels,
    createProvider,
    fit,
    onFallback: (err, from, to) => log.warn({ err, from, to }, 'upstream failed; trying the fallback model')
  })
}
